"""Event clips in the console, in a real browser (Debian's Chromium via Playwright):
a real H.264 MP4 plays from the hub with HTTP Range, its detections are on a
timeline that seeks it, and "fetch clip" sends the device the ``clip``
command (real Mosquitto) and shows the upload's progress, which the test
drives by writing the partial file and then the stored clip the way
hub.clips' receiver does."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hub.clips.files import Declared, files_of, write_declared
from hub.clips.tables import clips
from hub.commands import PahoPublisher
from hub.config import MqttConfig
from hub.console.app import ConsoleContext, ConsoleSettings
from hub.console.clip_source import HubClips
from hub.console.server import ConsoleServer, MqttPublisher
from hub.db import make_engine
from hub.mqtt.client import make_client
from protocol.topics import cmd_topic
from sim.ports import free_port, wait_port
from tests.support.broker import run_broker
from tests.support.clip_files import make_mp4, sha256
from tests.support.console import PASSWORD, County, make_users, seed_county
from tests.support.mqtt_clients import Peer
from tests.support.wait import wait_for

playwright_sync = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"]  # fmt: skip
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[County, str, int, Path]]:
    tmp = tmp_path_factory.mktemp("console-clips")
    engine = make_engine(f"sqlite:///{tmp / 'hub.sqlite3'}")
    county = seed_county(engine)
    make_users(engine)
    root = tmp / "clips"
    with run_broker() as broker:
        client = make_client(MqttConfig(host="127.0.0.1", port=broker.port), f"console-{uuid.uuid4().hex[:6]}")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        wait_for(client.is_connected, 5, "console MQTT connection")
        publisher = PahoPublisher(client)
        settings = ConsoleSettings(port=free_port(), refresh_s=2)
        ctx = ConsoleContext(engine, settings, MqttPublisher(engine, publisher), HubClips(engine, root, publisher))
        server = ConsoleServer(ctx)
        server.start()
        wait_port(settings.port)
        try:
            yield county, f"http://127.0.0.1:{settings.port}", broker.port, root
        finally:
            server.stop()
            client.disconnect()
            client.loop_stop()
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def login(browser: Any, base: str, user: str) -> Any:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN", bypass_csp=True)
    page = ctx.new_page()
    page.goto(f"{base}/lang?to=zh&next=/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def event_row(county: County, device: str, event_id: int) -> int:
    from sqlalchemy import select

    from hub.db.schema_ops import events

    with county.engine.connect() as conn:
        return int(
            conn.execute(
                select(events.c.id).where(events.c.device_id == device, events.c.event_id == event_id)
            ).scalar_one()
        )


def store(county: County, root: Path, device: str, event_id: int, mp4: bytes, start_ms: int, dets: list[Any]) -> None:
    """What hub.clips' receiver does when the last chunk is in: the file in place, then its row."""
    f = files_of(root, device, event_id)
    f.final.parent.mkdir(parents=True, exist_ok=True)
    if f.part.exists():
        f.part.replace(f.final)
    else:
        f.final.write_bytes(mp4)
    with county.engine.begin() as conn:
        row = dict(device_id=device, event_id=event_id, bytes=len(mp4), sha256=sha256(mp4), start_ms=start_ms,
                   end_ms=start_ms + 6_000, received_ms=int(time.time() * 1000), detections=dets)  # fmt: skip
        conn.execute(clips.insert().values(**row))
    f.meta.unlink(missing_ok=True)


def test_the_event_page_plays_the_clip_and_its_timeline_seeks_to_the_detections(
    world: tuple[County, str, int, Path], browser: Any, tmp_path: Path
) -> None:
    county, base, _port, root = world
    dev = county.devices["g0101-01"][0]
    eid = (9 << 32) + 3
    county.event(dev, eid, "person", snapshot=True, bbox=(300, 200, 500, 900))
    start = int(time.time() * 1000) - 30_000
    mp4 = make_mp4(tmp_path / "c.mp4", 6.0)
    dets = [[start + 1_000, 81, 100, 150, 300, 900], [start + 2_500, 90, 400, 200, 600, 950],
            [start + 4_000, 77, 650, 250, 850, 980]]  # fmt: skip
    store(county, root, dev, eid, mp4, start, dets)

    page = login(browser, base, "viewer1")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/events/{event_row(county, dev, eid)}")
    page.wait_for_function("document.getElementById('clip-video').readyState >= 2", timeout=15_000)
    assert page.locator("#clip-timeline rect.mark").count() == 3
    marks = page.locator("#clip-timeline rect.mark").all()
    assert [float(m.get_attribute("data-t") or -1) for m in marks] == [1.0, 2.5, 4.0]
    assert page.evaluate("document.getElementById('clip-video').duration") == pytest.approx(6.0, abs=0.3)

    page.evaluate("document.getElementById('clip-video').play()")
    page.wait_for_function("document.getElementById('clip-video').currentTime > 0.5", timeout=15_000)
    page.evaluate("document.getElementById('clip-video').pause()")

    # A click on the second mark seeks there, and its box is drawn over the video.
    page.locator("#clip-timeline rect.mark").nth(1).click()
    page.wait_for_function("Math.abs(document.getElementById('clip-video').currentTime - 2.5) < 0.05")
    page.wait_for_function("document.querySelector('#clip-boxes rect').getAttribute('visibility') === 'visible'")
    box = page.locator("#clip-boxes rect")
    assert [float(box.get_attribute(a) or -1) for a in ("x", "y", "width", "height")] == [400, 200, 200, 750]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "event-clip.png"), full_page=True)

    # Seeking is served by HTTP Range.
    resp = page.request.get(f"{base}/clips/{dev}/{eid}.mp4", headers={"Range": "bytes=100-199"})
    assert resp.status == 206 and resp.headers["content-range"] == f"bytes 100-199/{len(mp4)}"
    assert resp.body() == mp4[100:200]
    assert page.request.get(f"{base}/clips/{dev}/{eid}.mp4").body() == mp4
    assert page.request.get(f"{base}/clips/{dev}/{eid}.mp4", headers={"Range": f"bytes={len(mp4)}-"}).status == 416
    # Without a login nothing is served.
    anon = browser.new_context().request.get(f"{base}/clips/{dev}/{eid}.mp4", max_redirects=0)
    assert anon.status == 303 and "/login" in anon.headers["location"]
    assert not errors, errors


def test_fetch_clip_sends_the_command_and_shows_the_upload_until_the_clip_plays(
    world: tuple[County, str, int, Path], browser: Any, tmp_path: Path
) -> None:
    county, base, port, root = world
    dev = county.devices["g0101-02"][0]
    eid = (9 << 32) + 8
    county.event(dev, eid, "motion")
    row = event_row(county, dev, eid)
    device = Peer(port, f"dev-{uuid.uuid4().hex[:6]}")
    device.subscribe(cmd_topic(dev))

    viewer = login(browser, base, "viewer1")
    viewer.goto(f"{base}/events/{row}")
    assert "录像不在中心" in viewer.locator("#clip-state").inner_text()
    assert viewer.locator("#clip-fetch").count() == 0  # viewers cannot ask a device for video

    page = login(browser, base, "op1")
    assert page.request.post(f"{base}/events/{row}/clip", form={}).status == 403  # no CSRF token
    page.goto(f"{base}/events/{row}")
    page.click("#clip-fetch")
    page.wait_for_url(f"{base}/events/{row}?notice=clip_requested")
    topic, payload, _ = device.get(10)
    cmd = json.loads(payload)
    assert topic == cmd_topic(dev) and cmd["op"] == "clip" and cmd["a"] == {"id": eid}
    assert "已请求" in page.locator("#clip-state").inner_text()

    # The device starts uploading: the receiver's partial file and declared length.
    mp4 = make_mp4(tmp_path / "u.mp4", 6.0)
    f = files_of(root, dev, eid)
    f.part.parent.mkdir(parents=True, exist_ok=True)
    write_declared(f.meta, Declared(len(mp4), sha256(mp4)))
    half = len(mp4) // 2
    f.part.write_bytes(mp4[:half])
    page.wait_for_function(f"document.getElementById('clip-progress').value === {half}", timeout=10_000)
    assert page.locator("#clip-state").inner_text() == "上传中"
    assert page.evaluate("document.getElementById('clip-progress').max") == len(mp4)
    assert page.locator("#clip-bytes").inner_text().startswith(f"{100 * half // len(mp4)}%")
    page.screenshot(path=str(SHOTS / "event-clip-uploading.png"), full_page=True)

    with f.part.open("ab") as out:
        out.write(mp4[half:])
    store(county, root, dev, eid, mp4, int(time.time() * 1000) - 20_000, [])
    playable = "(v => v !== null && v.readyState >= 2)(document.getElementById('clip-video'))"
    page.wait_for_function(playable, timeout=15_000)
    assert "片段内无检测记录" in page.locator("#clip").inner_text()
    device.close()

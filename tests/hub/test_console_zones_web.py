"""The zones editor in a real browser (Debian's Chromium via Playwright), under the
console's own CSP, against uvicorn, a real SQLite database and a real Mosquitto:
the operator takes a live picture, draws a zone and a mask with the mouse, names
the zone and pushes it; a device on the broker receives the `config` command,
checks the polygon is where the mouse clicked, and answers; the page shows the
answer (applied, then refused with the device's reason)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from hub.db import make_engine
from hub.db.schema_ops import snapshots
from protocol.codec import Snapshot, encode, encode_snapshot
from protocol.messages import Ack
from protocol.topics import ack_topic, cmd_topic, snap_topic
from tests.support.browser import SHOTS, chromium, console_with_broker, needs_chromium
from tests.support.console import PASSWORD, County, jpeg, make_users, now_ms, seed_county
from tests.support.mqtt_clients import Peer
from tests.support.wait import wait_for

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[County, str, int]]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('zones') / 'hub.sqlite3'}")
    county = seed_county(engine)
    make_users(engine)
    with console_with_broker(engine) as (base, port):
        yield county, base, port
    engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


def login(browser: Any, base: str, user: str) -> Any:
    # The page's CSP stays in force (no bypass_csp): the editor must work without inline script,
    # so the test waits with locators only, never with wait_for_function's eval.
    page = browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN").new_page()
    page.goto(f"{base}/lang?to=zh&next=/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def device_answers(county: County, dev: str, command_id: str, error: str | None = None) -> None:
    """The device's ack, through ingest (hub.commands.record_result), as test_console_web does."""
    county.send(
        ack_topic(dev), encode(Ack(of="cmd", ref_id=command_id, ok=error is None, error=error, time_ms=now_ms()))
    )


def next_command(device: Any, dev: str, op: str) -> dict[str, Any]:
    topic, payload, _ = device.get(10)
    cmd: dict[str, Any] = json.loads(payload)
    assert topic == cmd_topic(dev) and cmd["op"] == op, (topic, cmd)
    return cmd


def click_at(page: Any, box: dict[str, float], fx: float, fy: float) -> tuple[float, float]:
    """Click at a fraction of the canvas; the fraction the click actually landed at (whole pixels)."""
    x, y = round(box["x"] + fx * box["width"]), round(box["y"] + fy * box["height"])
    page.mouse.click(x, y)
    return (x - box["x"]) / box["width"], (y - box["y"]) / box["height"]


def assert_polygon(got: list[list[float]], clicked: list[tuple[float, float]], box: dict[str, float]) -> None:
    assert len(got) == len(clicked), got
    for (gx, gy), (cx, cy) in zip(got, clicked, strict=True):
        assert gx == round(gx, 3) and gy == round(gy, 3)  # 3 decimals on the wire
        # Within a pixel and the rounding of where the mouse was.
        assert abs(gx - cx) <= 1 / box["width"] + 0.0005 and abs(gy - cy) <= 1 / box["height"] + 0.0005, (got, clicked)


def test_draw_a_zone_push_it_and_see_the_devices_answer(world: tuple[County, str, int], browser: Any) -> None:
    county, base, port = world
    dev = county.devices["g0101-02"][0]
    device = Peer(port, f"dev-{uuid.uuid4().hex[:6]}")
    device.subscribe(cmd_topic(dev))
    page = login(browser, base, "op1")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/devices/{dev}")
    page.click("#zones-link")
    page.wait_for_url(f"{base}/devices/{dev}/zones")
    expect(page.locator("#zn-live-status")).to_contain_text("尚无整幅画面")  # this device has sent no picture yet

    # A live picture: the snapshot command, answered by the device with a snap that ingest stores.
    page.click("#zn-live")
    expect(page.locator("#zn-live-status")).to_contain_text("已请求抓拍")
    snap_cmd = next_command(device, dev, "snapshot")
    county.send(snap_topic(dev), encode_snapshot(Snapshot((5 << 32) + 9, "start", now_ms(), 640, 360, jpeg(640, 360))))
    device_answers(county, dev, snap_cmd["id"])
    with county.engine.connect() as conn:
        snap_id = conn.execute(select(func.max(snapshots.c.id)).where(snapshots.c.device_id == dev)).scalar_one()
    img = page.locator("#zn-img")
    expect(img).to_have_attribute("data-snap", str(snap_id), timeout=10_000)
    expect(page.locator("#zn-live-status")).to_contain_text("画面时间")
    wait_for(lambda: img.evaluate("i => i.complete && i.naturalWidth") == 640, 10, "the live picture loaded")

    # A zone: four clicks, then a click on the first point closes it.
    box = page.locator("#zn-canvas").bounding_box()
    assert box["width"] > 400 and abs(box["width"] / box["height"] - 16 / 9) < 0.02  # the canvas is the picture
    # Off the 0.01 grid, so that coarser rounding than 3 decimals would show.
    zone = [
        click_at(page, box, fx, fy)
        for fx, fy in ((0.4137, 0.5062), (0.6271, 0.4836), (0.6549, 0.9667), (0.3868, 0.9453))
    ]
    click_at(page, box, 0.4137, 0.5062)
    expect(page.locator(".zn-item")).to_have_count(1)
    expect(page.locator(".zn-item .warn")).to_have_count(0)  # closed
    page.locator(".zn-item.on input.zn-name").fill("院门")
    page.locator("#zn-required label", has_text="院门").locator("input").check()
    # A mask: two clicks and a double-click on the third corner.
    page.check("input[name=zn-new-kind][value=mask]")
    mask = [click_at(page, box, fx, fy) for fx, fy in ((0.0234, 0.0316), (0.3047, 0.0316))]
    x, y = round(box["x"] + 0.3047 * box["width"]), round(box["y"] + 0.2573 * box["height"])
    page.mouse.dblclick(x, y)
    mask.append(((x - box["x"]) / box["width"], (y - box["y"]) / box["height"]))
    expect(page.locator(".zn-item[data-kind=mask]")).to_have_count(1)
    page.select_option("#zn-pf-select", "ir")
    page.locator(".zn-profile[data-profile=night] .zn-pf-score").fill("0.6")

    page.click("#zn-push")
    cmd = next_command(device, dev, "config")
    vision = cmd["a"]["vision"]
    assert cmd["a"]["rev"] == 1
    [z] = vision["zones"]
    assert (z["name"], z["kinds"], z["inertia_s"], z["loiter_s"]) == ("院门", ["person"], 1, 0)
    assert_polygon(z["polygon"], zone, box)
    [m] = vision["masks"]
    assert_polygon(m, mask, box)
    assert vision["required_zones"] == ["院门"]
    assert vision["profiles"]["select"] == "ir" and vision["profiles"]["night"] == {"score_threshold": 0.6}
    expect(page.locator("#zn-push-status")).to_contain_text("等待设备回执")
    device_answers(county, dev, cmd["id"])
    expect(page.locator("#zn-push-status")).to_have_text("设备已生效 · rev 1", timeout=10_000)
    expect(page.locator("#zn-history tr[data-rev='1'] td.result")).to_have_text("设备已生效")

    # A second push the device refuses: the reason is the device's, and the page shows it.
    page.locator(".zn-item[data-kind=zone] input.zn-loiter_s").fill("30")
    page.click("#zn-push")
    cmd2 = next_command(device, dev, "config")
    assert cmd2["a"]["rev"] == 2 and cmd2["a"]["vision"]["zones"][0]["loiter_s"] == 30
    reason = "vision.zones[0].loiter_s: a loitering zone needs the person kind"
    device_answers(county, dev, cmd2["id"], reason)
    expect(page.locator("#zn-push-status")).to_have_text(f"设备拒绝：{reason}", timeout=10_000)
    expect(page.locator("#zn-history tr[data-rev='2'] td.result")).to_have_text(f"设备拒绝：{reason}")
    expect(page.locator("#zn-history tr[data-rev='2'] td").nth(2)).to_have_text("op1")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "zones.png"), full_page=True)

    # The history's first row back into the editor: loitering as it was applied.
    page.locator("#zn-history tr[data-rev='1'] button.zn-load").click()
    expect(page.locator(".zn-item[data-kind=zone] input.zn-loiter_s")).to_have_value("0")
    expect(page.locator("#zn-push-status")).to_contain_text("已载入版本 1")
    assert not errors, errors
    device.close()


def test_a_viewer_sees_the_applied_zones_and_cannot_draw(world: tuple[County, str, int], browser: Any) -> None:
    county, base, port = world
    dev = county.devices["g0101-02"][1]
    device = Peer(port, f"dev-{uuid.uuid4().hex[:6]}")
    device.subscribe(cmd_topic(dev))
    op = login(browser, base, "op1")
    vision = {"zones": [{"name": "路", "polygon": [[0, 0.3], [1, 0.3], [1, 0.5], [0, 0.5]], "loiter_s": 60}]}
    resp = op.request.post(
        f"{base}/api/devices/{dev}/config",
        data=json.dumps({"vision": vision}),
        headers={"Content-Type": "application/json", "X-CSRF-Token": csrf(op)},
    )
    assert resp.status == 200, resp.text()
    device_answers(county, dev, next_command(device, dev, "config")["id"])
    page = login(browser, base, "viewer1")
    page.goto(f"{base}/devices/{dev}/zones")
    expect(page.locator(".zn-item input.zn-name")).to_have_value("路")
    expect(page.locator(".zn-item input.zn-loiter_s")).to_be_disabled()
    expect(page.locator("#zn-history tr[data-rev='1'] td.result")).to_have_text("设备已生效")
    assert page.locator("#zn-push, #zn-live").count() == 0
    box = page.locator("#zn-canvas").bounding_box()
    for fx in (0.1, 0.3, 0.1):
        click_at(page, box, fx, 0.8)
    expect(page.locator(".zn-item")).to_have_count(1)  # clicks draw nothing for a viewer
    device.close()


def csrf(page: Any) -> str:
    """The session's CSRF token, from the logout form every page carries."""
    return str(page.locator("header form input[name=csrf]").get_attribute("value"))


def test_an_admin_pushes_a_template_to_the_whole_village(world: tuple[County, str, int], browser: Any) -> None:
    county, base, port = world
    devs = county.devices["g0201-01"]  # 双茨村: one of its three is offline, and still gets it (QoS 1)
    peers = []
    for d in devs:
        peer = Peer(port, f"dev-{uuid.uuid4().hex[:6]}")
        peer.subscribe(cmd_topic(d))
        peers.append(peer)
    page = login(browser, base, "admin1")
    page.on("dialog", lambda dialog: dialog.accept())  # the "every device of the village?" confirmation
    page.goto(f"{base}/devices/{devs[0]}/zones")
    box = page.locator("#zn-canvas").bounding_box()
    for fx, fy in ((0.1, 0.1), (0.9, 0.1), (0.9, 0.4)):
        click_at(page, box, fx, fy)
    page.click("#zn-close")
    page.click("#zn-push-village")
    expect(page.locator("#zn-village-status")).to_have_text("请填写模板名")  # a village push needs a name
    page.fill("#zn-template", "双茨村 路口")
    page.click("#zn-push-village")
    expect(page.locator("#zn-village-status")).to_have_text("已下发 3 台，失败 0 台")
    expect(page.locator("#zn-village-results tbody tr")).to_have_count(3)
    for d, peer in zip(devs, peers, strict=True):
        cmd = next_command(peer, d, "config")
        assert [z["name"] for z in cmd["a"]["vision"]["zones"]] == ["区域1"]
        peer.close()
    expect(page.locator("#zn-history tr[data-rev='1'] td").nth(3)).to_have_text("双茨村 路口")

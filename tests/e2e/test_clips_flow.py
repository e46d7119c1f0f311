"""Video clips end to end (issue 18, docs/clips.md): every part real, each in its own process.

The county office: ``xl-provision ca init`` (with the update server's port),
``release keys init`` (the update server's repository), one ``device add``
with armed hours that exclude the next hours (tests/support/hub_db.py
``not_armed_now``: the outcome must not depend on the hour the suite runs
at), ``broker-config``.

The hub: a real Mosquitto on the generated TLS/dynsec config and ``xl-hub
run`` with ``updates.enabled`` (its mTLS server carries the clip uploads),
``clips.enabled`` (the county policy: panic and person_armed clips upload at
once, pushed every second), forwarding to the strict mock 视图库
(sim/mock_viid.py) and a webhook double (sim/mock_webhook.py, ``clips:
link``), and the console, logged in over HTTP by an operator made with ``xl-hub
user add``.

The device: a real ``xl-agent run`` on ``synthetic:walkthrough?seconds=40``
(one person walks through at 3-11 s of every 40 s loop) recording clips,
whose simulated household (agent config ``simulate:``) holds the panic button
about 16 s after start. The broker is stopped once the hub's policy is on the
device, while the household holds the button (before the panic), so the
panic event waits in the outbox while its clip is cut: the uploader must not
send a byte of it until the outbox has drained, and then sends it by itself.
The person visit, outside armed hours, is only uploaded when an operator
presses "fetch clip" on its event page.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine, create_engine, select

from hub.clips.files import files_of
from hub.clips.tables import clip_policy_sent, clips
from hub.db.schema import devices
from hub.db.schema_ops import events, health_latest
from protocol.ids import split_event_id
from sim.mock_viid import MockViid
from sim.mock_webhook import MockWebhook
from sim.ports import free_port, wait_port
from tests.support.broker import MOSQUITTO, Broker, run_broker
from tests.support.clip_device import decode
from tests.support.forward_items import GATEWAY, PASSWORD
from tests.support.hub_db import not_armed_now
from tests.support.processes import run_cli as run
from tests.support.processes import stop_process as stop
from tests.support.wait import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto is not installed"),
]

BIN = Path(sys.executable).parent
SECRET = "clips-e2e-webhook-secret-32-byte"
LINK_KEY = "clips-e2e-clip-link-key-32-bytes"
OPERATOR, OP_PASSWORD = "op1", "correct horse 9"
PRE_S, POST_S, CLIP_FPS = 5.0, 5.0, 5.0
PANIC_AT_S = 14.0  # + gpio.hold_s: the panic lands near 16 s of the 40 s scene, after the person left
HOLDING = "simulate: household holds the panic button"  # agent/household_sim.py's log line
UPLOAD_BYTES_PER_S = 96 * 1024  # slow enough to watch the progress, quick enough for the suite


@dataclass
class Flow:
    work: Path
    engine: Engine
    device_id: str
    agent_state: Path
    clips_root: Path
    console_url: str
    broker: Broker
    viid: MockViid
    hook: MockWebhook
    hub_log: Path
    agent_log: Path
    agent: subprocess.Popen[bytes]
    broker_stopped_ms: int = 0
    broker_started_ms: int = 0
    panic_event: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    # -- what the device holds ---------------------------------------------------

    def device_clips(self) -> dict[int, dict[str, Any]]:
        """The device's clip index (docs/clips.md), read beside the running agent."""
        path = self.agent_state / "clips" / "index.sqlite3"
        if not path.exists():
            return {}
        db = sqlite3.connect(path, timeout=5)
        try:
            db.row_factory = sqlite3.Row
            return {int(r["event_id"]): dict(r) for r in db.execute("SELECT * FROM clips")}
        except sqlite3.OperationalError:  # the agent is creating it
            return {}
        finally:
            db.close()

    def device_policy(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.agent_state / "clips" / "policy.json").read_text()))
        except (OSError, ValueError):
            return {}

    # -- what the hub holds --------------------------------------------------------

    def hub_events(self, kind: str | None = None) -> list[Any]:
        q = select(events).where(events.c.device_id == self.device_id).order_by(events.c.id)
        if kind is not None:
            q = q.where(events.c.kind == kind)
        with self.engine.connect() as conn:
            return list(conn.execute(q).all())

    def hub_clips(self) -> dict[int, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(clips).where(clips.c.device_id == self.device_id)).all()
        return {int(r.event_id): r for r in rows}

    def hub_files(self, event_id: int) -> list[Path]:
        f = files_of(self.clips_root, self.device_id, event_id)
        return [p for p in (f.final, f.part, f.meta) if p.exists()]

    def policy_sent(self) -> str | None:
        with self.engine.connect() as conn:
            q = select(clip_policy_sent.c.policy).where(clip_policy_sent.c.device_id == self.device_id)
            value = conn.execute(q).scalar()
        return None if value is None else str(value)

    def online(self) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(select(devices.c.online).where(devices.c.id == self.device_id)).scalar())

    def diagnosis(self) -> str:
        hub = self.hub_log.read_text(errors="replace")[-4000:]
        agent = self.agent_log.read_text(errors="replace")[-4000:]
        return (
            f"--- hub log\n{hub}\n--- agent log\n{agent}\n--- device clips {self.device_clips()}\n"
            f"--- viid rejections {self.viid.rejections[-5:]}"
        )


def agent_config(state: Path, device_id: str, home: Path) -> Path:
    bundle = state / "bundles" / device_id
    doc = yaml.safe_load((bundle / "agent.yaml").read_text(encoding="utf-8"))
    tls = bundle / "tls"
    doc["broker"].update(ca=str(tls / "ca.crt"), cert=str(tls / "device.crt"), key=str(tls / "device.key"))
    doc["broker"]["backoff_cap_s"] = 1.0
    doc["state_dir"] = str(home / "state")
    doc["health"] = {"interval_s": 5}
    doc["camera"] = {"source": "synthetic:walkthrough?seconds=40", "fps": 5, "width": 640, "height": 360}
    doc["vision"] = {"detect": {"num_threads": 1, "detect_fps": 2.0}}
    doc["gpio"] = {"led": 17, "buzzer": 18, "button": 27, "pin_factory": "mock", "hold_s": 2.0}
    doc["simulate"] = {"panic_at_s": PANIC_AT_S}
    doc["clips"] = {"fps": CLIP_FPS, "pre_s": PRE_S, "post_s": POST_S, "upload_bytes_per_s": UPLOAD_BYTES_PER_S}
    path = home / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def hub_yaml(state: Path, path: Path, ports: dict[str, int], viid_url: str, hook_url: str, clips_root: Path) -> None:
    ca, clients = state / "ca", state / "ca" / "clients"
    console_url = f"http://127.0.0.1:{ports['console']}"
    doc = {
        "database": {"url": f"sqlite:///{state / 'hub.sqlite3'}"},
        "mqtt": {
            "host": "localhost",
            "port": ports["broker"],
            "client_id": "hub",
            "tls": {"ca": str(ca / "ca.crt"), "cert": str(clients / "hub.crt"), "key": str(clients / "hub.key")},
        },
        "ingest": {"batch_ms": 10},
        "health": {"check_interval_s": 0.5},
        "metrics": {"enabled": False},
        "updates": {
            "enabled": True,
            "host": "127.0.0.1",
            "port": ports["update"],
            "repo": str(state / "tuf" / "repo"),
            "keys_dir": str(state / "tuf" / "online"),
            "ca": str(ca / "ca.crt"),
            "cert": str(ca / "server.crt"),
            "key": str(ca / "server.key"),
        },
        "clips": {
            "enabled": True,
            "path": str(clips_root),
            "policy_interval_s": 1.0,
            "policy": {"auto": ["panic", "person_armed"], "daily": 20_000_000},
        },
        "forward": {
            "retry_base_s": 1,
            "retry_cap_s": 5,
            "viid": {"base_url": viid_url, "gateway_id": GATEWAY, "password": PASSWORD, "keepalive_s": 30},
            "webhook": {
                "url": hook_url,
                "secret": SECRET,
                "clips": "link",
                "clip_base_url": console_url,
                "clip_link_secret": LINK_KEY,
            },
        },
        "console": {"port": ports["console"], "refresh_s": 2},
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    work = tmp_path_factory.mktemp("clips-e2e")
    state = work / "state"
    ports = {"broker": free_port(), "update": free_port(), "console": free_port()}
    xp = BIN / "xl-provision"
    run(xp, "ca", "init", "--state", state, "--broker-host", "localhost", "--broker-port", str(ports["broker"]),
        "--update-port", str(ports["update"]))  # fmt: skip
    run(xp, "release", "keys", "init", "--state", state)  # the update server's repository (clips ride on it)
    armed = not_armed_now()
    run(xp, "device", "add", "--state", state, "--township", "泉山镇", "--village", "和平村", "--household", "HH01",
        "--group", "g-heping", "--armed-from", armed["armed_from"], "--armed-to", armed["armed_to"])  # fmt: skip
    run(xp, "broker-config", "--state", state, "--out", state / "broker", "--port", str(ports["broker"]),
        "--bind", "127.0.0.1")  # fmt: skip
    (device_id,) = [b.name for b in (state / "bundles").iterdir()]

    viid = MockViid(GATEWAY, PASSWORD)
    viid_url = viid.start()
    hook = MockWebhook(SECRET.encode())
    hook_url = hook.start()
    clips_root = work / "hub-clips"
    hub_config, hub_log = work / "hub.yaml", work / "hub.log"
    hub_yaml(state, hub_config, ports, viid_url, hook_url, clips_root)
    run(BIN / "xl-hub", "db", "upgrade", "--config", hub_config)
    run(BIN / "xl-hub", "user", "add", OPERATOR, "--role", "operator", "--password", OP_PASSWORD,
        "--config", hub_config)  # fmt: skip
    home = work / "device"
    home.mkdir()
    config = agent_config(state, device_id, home)
    agent_log = home / "agent.log"
    engine = create_engine(f"sqlite:///{state / 'hub.sqlite3'}")
    (work / "broker").mkdir()
    conf = (state / "broker" / "mosquitto.conf").read_text()
    try:
        with run_broker(conf, port=ports["broker"], workdir=work / "broker") as broker:
            with open(hub_log, "wb") as log:
                hub = subprocess.Popen([BIN / "xl-hub", "run", "--config", hub_config], stdout=log,
                                       stderr=subprocess.STDOUT, cwd=work)  # fmt: skip
            try:
                wait_port(ports["update"], 60)
                wait_port(ports["console"], 30)
                with open(agent_log, "wb") as log:
                    agent = subprocess.Popen([BIN / "xl-agent", "run", "--config", config], stdout=log,
                                             stderr=subprocess.STDOUT, cwd=home)  # fmt: skip
                f = Flow(work, engine, device_id, home / "state", clips_root, f"http://127.0.0.1:{ports['console']}",
                         broker, viid, hook, hub_log, agent_log, agent)  # fmt: skip
                try:
                    yield f
                finally:
                    stop(agent)
            finally:
                stop(hub)
    finally:
        viid.stop()
        hook.stop()
        engine.dispose()


def login(base: str) -> httpx.Client:
    cl = httpx.Client(base_url=base, timeout=10)
    page = cl.get("/login")
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert m is not None, page.text[:500]
    resp = cl.post("/login", data={"username": OPERATOR, "password": OP_PASSWORD, "csrf": m.group(1), "next": "/"})
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    return cl


def check_mp4(path: Path, min_s: float) -> dict[str, Any]:
    """Decoded with PyAV: frames, a keyframe first, at least ``min_s`` seconds."""
    frames, duration, profile = decode(path)
    assert frames and frames[0].key_frame, (len(frames), path)
    assert duration >= min_s, (duration, min_s)
    assert len(frames) >= round(min_s * CLIP_FPS) - 1, (len(frames), duration)
    assert (frames[0].width, frames[0].height) == (640, 360)
    return {"frames": len(frames), "duration_s": round(duration, 2), "profile": profile}


def check_served(cl: httpx.Client, url: str, data: bytes) -> None:
    """The console serves the stored clip whole and by Range to a logged-in user, and to nobody else."""
    whole = cl.get(url)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4", whole.status_code
    assert hashlib.sha256(whole.content).digest() == hashlib.sha256(data).digest()
    part = cl.get(url, headers={"Range": "bytes=100-1123"})
    assert part.status_code == 206 and part.headers["content-range"] == f"bytes 100-1123/{len(data)}"
    assert part.content == data[100:1124]
    tail = cl.get(url, headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]
    assert cl.get(url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416
    anonymous = httpx.get(str(cl.base_url).rstrip("/") + url, timeout=10, follow_redirects=False)
    assert anonymous.status_code in (302, 303, 401) and anonymous.content[4:8] != b"ftyp", anonymous.status_code


def stored_once(f: Flow, event_id: int) -> bytes:
    """The hub's one index row and its file; the sha256 the device computed."""
    row = f.hub_clips()[event_id]
    path = files_of(f.clips_root, f.device_id, event_id).final
    data = path.read_bytes()
    dev = f.device_clips()[event_id]
    assert row.bytes == len(data) == dev["bytes"]
    assert row.sha256 == hashlib.sha256(data).hexdigest() == dev["sha256"]
    assert f.hub_files(event_id) == [path], f.hub_files(event_id)  # no partial or sidecar left behind
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f"{event_id}.")) == [path.name]
    return data


def slices_of(f: Flow, event_id: int) -> list[dict[str, Any]]:
    seq = split_event_id(event_id)[1]
    return [
        s
        for s in f.viid.video_slices
        if s["VideoSliceInfo"]["DeviceID"] == f.device_id and s["VideoSliceInfo"]["VideoID"].endswith(f"{seq:05d}")
    ]


def webhook_clip(f: Flow, event_id: int) -> list[dict[str, Any]]:
    return [b for b in f.hook.bodies if b.get("type") == "clip" and b.get("event_id") == event_id]


def test_the_panic_clip_waits_for_the_outbox_then_uploads_by_itself(flow: Flow) -> None:
    f = flow
    t0 = time.monotonic()
    try:
        wait_for(f.online, 60, "the device online at the hub", step=0.2)
        wait_for(lambda: "panic" in f.device_policy().get("auto", []), 30, "the hub's policy on the device", step=0.2)
        wait_for(lambda: f.policy_sent() is not None, 10, "the hub's record of the policy it sent")
        assert f.policy_sent() == json.dumps(
            {"auto": ["panic", "person_armed"], "daily": 20_000_000}, separators=(",", ":"), sort_keys=True
        )
        # Events must never wait behind a clip: the link goes away while the household holds the
        # button (gpio.hold_s before the panic), so the panic event waits in the outbox.
        wait_for(lambda: HOLDING in f.agent_log.read_text(errors="replace"), 60, "the household at the button")
        f.broker.stop()
        f.broker_stopped_ms = int(time.time() * 1000)

        def panic_clip() -> int | None:
            return next((e for e, c in f.device_clips().items() if c["kind"] == "panic"), None)

        wait_for(lambda: panic_clip() is not None, 60, "the panic clip cut on the device", step=0.2)
        f.panic_event = event = panic_clip() or 0
        cut = f.device_clips()[event]
        assert cut["keep"] == 1 and cut["uploaded"] == 0, cut
        # The outbox holds the panic event (no broker): not one clip byte goes to the hub, though
        # its HTTPS server is up and the policy says "panic".
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            assert f.hub_files(event) == [] and event not in f.hub_clips(), f.hub_files(event)
            time.sleep(0.1)
        f.broker_started_ms = int(time.time() * 1000)
        f.broker.start_again()
        first_byte: list[int] = []  # when the hub had the clip's first bytes (its sidecar's mtime)

        def stored() -> bool:
            meta = files_of(f.clips_root, f.device_id, event).meta
            if not first_byte and meta.exists():
                first_byte.append(meta.stat().st_mtime_ns // 1_000_000)
            return event in f.hub_clips()

        wait_for(stored, 60, "the panic clip stored at the hub", step=0.02)
        wait_for(lambda: f.device_clips()[event]["uploaded"] == 1, 10, "the device marks it uploaded")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{f.diagnosis()}") from None
    f.notes["panic_stored_s"] = round(time.monotonic() - t0, 1)

    (panic,) = f.hub_events("panic")
    assert panic.event_id == event
    assert panic.device_time_ms > f.broker_stopped_ms, "the panic came after the broker went away"
    row = f.hub_clips()[event]
    assert panic.received_ms >= f.broker_started_ms  # it waited in the outbox ...
    # ... and the clip only went once the hub had it (the device's outbox keeps an event until the hub's receipt)
    assert first_byte and first_byte[0] >= panic.received_ms, (first_byte, panic.received_ms)
    assert row.received_ms > panic.received_ms
    data = stored_once(f, event)
    f.notes["panic_clip"] = {"bytes": len(data), **check_mp4(files_of(f.clips_root, f.device_id, event).final,
                                                             PRE_S + POST_S)}  # fmt: skip

    cl = login(f.console_url)
    try:
        check_served(cl, f"/clips/{f.device_id}/{event}.mp4", data)
        wait_for(lambda: webhook_clip(f, event), 30, "the panic clip's link at the webhook", step=0.2)
        (body,) = webhook_clip(f, event)
        assert body["clip"]["url"].startswith(f"{f.console_url}/clips/{f.device_id}/{event}.mp4?exp=")
        assert body["clip"]["sha256"] == row.sha256 and body["clip"]["bytes"] == len(data)
        assert cl.get(body["clip"]["url"]).content == data  # the link works for a logged-in user
        assert httpx.get(body["clip"]["url"], timeout=10).content == data  # and, signed, for the receiver
    finally:
        cl.close()
    try:
        wait_for(lambda: slices_of(f, event), 30, "the panic's VideoSlice at the 视图库", step=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{f.diagnosis()}") from None
    (vs,) = slices_of(f, event)
    assert "PersonList" not in vs  # a panic has no PersonObject
    assert vs["VideoSliceInfo"]["FileSize"] == len(data)
    assert vs["VideoSliceInfo"]["FileHash"] == hashlib.md5(data).hexdigest()


def test_fetch_clip_of_a_person_outside_armed_hours(flow: Flow) -> None:
    f = flow
    assert f.panic_event, "the first test finds the panic clip"
    persons = [c for c in f.device_clips().values() if c["kind"] == "person"]
    assert persons, f.device_clips()
    clip = persons[0]
    event = int(clip["event_id"])
    assert clip["keep"] == 0 and clip["uploaded"] == 0, clip  # outside armed hours: not an alert clip
    # Not the policy's: it stayed on the device while the panic clip went up.
    assert event not in f.hub_clips() and f.hub_files(event) == []
    starts = [e for e in f.hub_events("person") if e.event_id == event and e.phase == "start"]
    assert starts and starts[0].has_snapshot, [tuple(e) for e in f.hub_events("person")]
    try:
        wait_for(lambda: any(p["DeviceID"] == f.device_id for p in f.viid.persons), 30, "the PersonObject", step=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{f.diagnosis()}") from None

    cl = login(f.console_url)
    try:
        page = cl.get(f"/events/{starts[0].id}")
        assert page.status_code == 200 and 'id="clip-fetch"' in page.text, page.text[:2000]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        asked = time.monotonic()
        resp = cl.post(f"/events/{starts[0].id}/clip", data={"csrf": csrf.group(1)})
        assert resp.status_code == 303 and resp.headers["location"].endswith("notice=clip_requested"), resp.text
        seen: list[tuple[str, int, int | None]] = []

        def progress() -> bool:
            p = cl.get(f"/api/clips/{f.device_id}/{event}").json()
            step = (p["state"], p["received"], p["total"])
            if not seen or seen[-1] != step:
                seen.append(step)
            return bool(p["state"] == "stored")

        try:
            wait_for(progress, 60, "the fetched clip stored", step=0.05)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nprogress {seen[:40]}\n{f.diagnosis()}") from None
        f.notes["fetch_s"] = round(time.monotonic() - asked, 1)
        states = [s for s, _, _ in seen]
        assert states[0] in ("requested", "uploading") and states[-1] == "stored", seen
        uploading = [(n, total) for s, n, total in seen if s == "uploading"]
        assert any(0 < n < (total or 0) for n, total in uploading), seen  # the progress bar moved
        assert [n for n, _ in uploading] == sorted(n for n, _ in uploading), seen
        wait_for(lambda: f.device_clips()[event]["uploaded"] == 1, 10, "the device marks it uploaded")
        data = stored_once(f, event)
        f.notes["person_clip"] = {"bytes": len(data), **check_mp4(files_of(f.clips_root, f.device_id, event).final,
                                                                  PRE_S + POST_S)}  # fmt: skip
        check_served(cl, f"/clips/{f.device_id}/{event}.mp4", data)
        page = cl.get(f"/events/{starts[0].id}")
        assert f'src="/clips/{f.device_id}/{event}.mp4"' in page.text
    finally:
        cl.close()

    try:
        wait_for(lambda: slices_of(f, event), 30, "the person clip's VideoSlice at the 视图库", step=0.2)
        wait_for(lambda: webhook_clip(f, event), 30, "the person clip's link at the webhook", step=0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{f.diagnosis()}") from None
    (vs,) = slices_of(f, event)
    linked = {p["PersonID"] for p in vs.get("PersonList", {}).get("PersonObject", [])}
    sent = {p["PersonID"] for p in f.viid.persons if p["DeviceID"] == f.device_id}
    assert linked and linked <= sent, (linked, sent)  # the same PersonObjects the platform already has
    assert vs["VideoSliceInfo"]["FileHash"] == hashlib.md5(data).hexdigest()
    time.sleep(2)  # a few more forwarder rounds: each clip went to the platform once
    assert len(slices_of(f, event)) == 1 and len(slices_of(f, f.panic_event)) == 1
    assert len(webhook_clip(f, event)) == 1 and f.hook.bad_signatures == 0
    assert f.viid.rejections == [], f.viid.rejections

    def health() -> dict[str, Any]:
        with f.engine.connect() as conn:
            q = select(health_latest.c.data).where(health_latest.c.device_id == f.device_id)
            data = conn.execute(q).scalar()
        return dict(data or {})

    # Health: the device's clips (cl, clb) and today's upload bytes (clu, retries and pauses included).
    uploaded = f.hub_clips()[event].bytes + f.hub_clips()[f.panic_event].bytes
    wait_for(lambda: health().get("clu", 0) >= uploaded, 20, "clip keys in the device's health at the hub")
    h = health()
    assert h["cl"] >= 2 and h["clb"] >= uploaded, h
    f.notes["health"] = {k: h[k] for k in ("cl", "clb", "clu")}
    assert f.agent.poll() is None, f.diagnosis()
    print(f"\nclips e2e: {json.dumps(f.notes)}")

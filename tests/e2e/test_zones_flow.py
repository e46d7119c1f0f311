"""Zones pushed to a running device, end to end (issue 20, docs/zones.md): every part real, each in
its own process, and the device killed with SIGKILL in the middle.

The county office: ``xl-provision ca init``, one ``device add`` whose armed hours are now
(tests/support/hub_db.py ``armed_now``: the person must alert whatever hour the suite runs),
``broker-config``. The hub: a real Mosquitto on the generated TLS/dynsec config and ``xl-hub run``
(SQLite). The device: a real ``xl-agent run`` on ``synthetic:walkthrough?seconds=30``, where a
person walks along the bottom of the yard (the road) from left to right at 3-11 s of every loop.

1. ``xl-hub config push DEVICE --file zones.yaml``: a road along the bottom of the picture and a
   gate on its right half, alerts only for the gate. The device applies it without a restart,
   acks it (history: applied) and says ``cfg`` 1 in health.
2. The next visit: its phases on the road carry ``na`` (stored, no alert); the update that enters
   the gate alerts, once, for that visit.
3. ``kill -9`` of the agent, a new one started: it comes up with the push (health ``cfg`` 1, the
   next visit zoned again) though nobody pushed it again.
4. A push the device's own schema refuses (a kind it has no detector for): refused
   with the device's reason naming the key, and the device keeps revision 1.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, create_engine, select

from hub.configs.service import ConfigPushes
from hub.db.schema import devices
from hub.db.schema_ops import alerts, events, health_latest
from sim.ports import free_port
from tests.support.broker import MOSQUITTO, run_broker
from tests.support.hub_db import armed_now
from tests.support.processes import BIN, run_cli, stop_process
from tests.support.wait import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto is not installed"),
]

ROAD = [[0.0, 0.8], [1.0, 0.8], [1.0, 1.0], [0.0, 1.0]]  # the walker's feet are on this strip
GATE = [[0.55, 0.8], [0.9, 0.8], [0.9, 1.0], [0.55, 1.0]]
ZONES = {
    "zones": [
        {"name": "road", "polygon": ROAD, "inertia_s": 0},
        {"name": "gate", "polygon": GATE, "inertia_s": 0.5},
    ],
    "required_zones": ["gate"],
}
REFUSED = {"zones": [{"name": "road", "polygon": ROAD, "kinds": ["car"]}]}  # the hub's shape check lets it by


@dataclass
class Flow:
    work: Path
    engine: Engine
    device_id: str
    config: Path
    hub_config: Path
    agent_log: Path
    hub_log: Path
    agent: subprocess.Popen[bytes] | None = None

    def start_agent(self) -> None:
        with open(self.agent_log, "ab") as log:
            self.agent = subprocess.Popen([BIN / "xl-agent", "run", "--config", self.config], stdout=log,
                                          stderr=subprocess.STDOUT, cwd=self.config.parent)  # fmt: skip

    def health(self) -> dict[str, Any]:
        with self.engine.connect() as conn:
            q = select(health_latest.c.data).where(health_latest.c.device_id == self.device_id)
            data = conn.execute(q).scalar()
        return dict(data if isinstance(data, dict) else json.loads(data or "{}"))

    def online(self) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(select(devices.c.online).where(devices.c.id == self.device_id)).scalar())

    def person_events(self, after_ms: int) -> list[Any]:
        q = (
            select(events)
            .where(events.c.device_id == self.device_id, events.c.kind == "person", events.c.received_ms > after_ms)
            .order_by(events.c.id)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(q).all())

    def person_alerts(self) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(alerts).where(alerts.c.kind == "person")).all())

    def history(self) -> list[dict[str, Any]]:
        return ConfigPushes(self.engine, None).history(self.device_id)

    def push(self, vision: dict[str, Any]) -> str:
        path = self.work / f"push-{time.monotonic_ns()}.yaml"
        path.write_text(yaml.safe_dump(vision, allow_unicode=True), encoding="utf-8")
        return run_cli(BIN / "xl-hub", "config", "push", self.device_id, "--file", path, "--by", "installer",
                       "--config", self.hub_config)  # fmt: skip

    def wait(self, check: Any, timeout: float, what: str) -> None:
        try:
            wait_for(check, timeout, what, step=0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnosis()}") from None

    def diagnosis(self) -> str:
        hub = self.hub_log.read_text(errors="replace")[-3000:]
        agent = self.agent_log.read_text(errors="replace")[-3000:]
        return f"--- hub log\n{hub}\n--- agent log\n{agent}\n--- history {self.history()}"


def agent_config(state: Path, device_id: str, home: Path) -> Path:
    bundle = state / "bundles" / device_id
    doc = yaml.safe_load((bundle / "agent.yaml").read_text(encoding="utf-8"))
    tls = bundle / "tls"
    doc["broker"].update(ca=str(tls / "ca.crt"), cert=str(tls / "device.crt"), key=str(tls / "device.key"))
    doc["broker"]["backoff_cap_s"] = 1.0
    doc["state_dir"] = str(home / "state")
    doc["health"] = {"interval_s": 5}
    doc["camera"] = {"source": "synthetic:walkthrough?seconds=30", "fps": 5, "width": 640, "height": 360}
    doc["vision"] = {"detect": {"num_threads": 1, "detect_fps": 2.0}}
    doc["clips"] = {"enabled": False}
    path = home / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def hub_yaml(state: Path, path: Path, port: int) -> None:
    ca, clients = state / "ca", state / "ca" / "clients"
    doc = {
        "database": {"url": f"sqlite:///{state / 'hub.sqlite3'}"},
        "mqtt": {
            "host": "localhost",
            "port": port,
            "client_id": "hub",
            "tls": {"ca": str(ca / "ca.crt"), "cert": str(clients / "hub.crt"), "key": str(clients / "hub.key")},
        },
        "ingest": {"batch_ms": 10},
        "health": {"check_interval_s": 0.5},
        "metrics": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    work = tmp_path_factory.mktemp("zones-e2e")
    state = work / "state"
    port = free_port()
    xp = BIN / "xl-provision"
    run_cli(xp, "ca", "init", "--state", state, "--broker-host", "localhost", "--broker-port", str(port))
    armed = armed_now()
    run_cli(xp, "device", "add", "--state", state, "--township", "泉山镇", "--village", "和平村",
            "--household", "HH01", "--group", "g-heping", "--armed-from", armed["armed_from"],
            "--armed-to", armed["armed_to"])  # fmt: skip
    run_cli(xp, "broker-config", "--state", state, "--out", state / "broker", "--port", str(port),
            "--bind", "127.0.0.1")  # fmt: skip
    (device_id,) = [b.name for b in (state / "bundles").iterdir()]
    hub_config = work / "hub.yaml"
    hub_yaml(state, hub_config, port)
    run_cli(BIN / "xl-hub", "db", "upgrade", "--config", hub_config)
    home = work / "device"
    home.mkdir()
    engine = create_engine(f"sqlite:///{state / 'hub.sqlite3'}")
    (work / "broker").mkdir()
    conf = (state / "broker" / "mosquitto.conf").read_text()
    f = Flow(work, engine, device_id, agent_config(state, device_id, home), hub_config, home / "agent.log",
             work / "hub.log")  # fmt: skip
    try:
        with run_broker(conf, port=port, workdir=work / "broker"):
            with open(f.hub_log, "wb") as log:
                hub = subprocess.Popen([BIN / "xl-hub", "run", "--config", hub_config], stdout=log,
                                       stderr=subprocess.STDOUT, cwd=work)  # fmt: skip
            try:
                f.start_agent()
                try:
                    yield f
                finally:
                    if f.agent is not None:
                        stop_process(f.agent)
            finally:
                stop_process(hub)
    finally:
        engine.dispose()


def zoned_visit(f: Flow, after_ms: int, timeout: float = 90) -> list[Any]:
    """The phases of the first visit received after ``after_ms`` that reached the gate, through its end."""
    found: list[Any] = []

    def done() -> bool:
        rows = f.person_events(after_ms)
        gated = [r.event_id for r in rows if r.zones and "gate" in r.zones]
        if not gated:
            return False
        phases = [r for r in rows if r.event_id == gated[0]]
        found[:] = phases
        return any(r.phase == "end" for r in phases)

    wait_for(done, timeout, "a visit through the gate, to its end")
    return found


def test_zones_pushed_to_a_running_device_alert_at_the_gate_and_survive_kill_9(flow: Flow) -> None:
    f = flow
    f.wait(f.online, 60, "the device online")
    out = f.push(ZONES)
    assert "rev 1  queued" in out, out  # the running hub sends it: the command never connects as the hub
    f.wait(lambda: f.history()[0]["status"] == "applied", 30, "the device's ack of rev 1")
    f.wait(lambda: f.health().get("cfg") == 1, 30, "health cfg 1")
    applied_ms = int(f.history()[0]["acked_ms"])
    assert f.agent is not None and f.agent.poll() is None  # applied with no restart

    # The next visit: on the road without an alert, then the gate, which alerts once.
    phases = zoned_visit(f, applied_ms)
    on_road = [r for r in phases if r.zones == ["road"]]
    assert on_road and all(r.no_alert for r in on_road), [(r.phase, r.zones, r.no_alert) for r in phases]
    through = [r for r in phases if r.zones == ["road", "gate"]]
    assert through and not any(r.no_alert for r in through)
    event_id = phases[0].event_id
    f.wait(lambda: any(a.event_id == event_id for a in f.person_alerts()), 10, "the gate's alert")
    assert sum(a.event_id == event_id for a in f.person_alerts()) == 1

    # SIGKILL, as a power cut would: the new process has the push without being sent it again.
    f.agent.send_signal(signal.SIGKILL)
    f.agent.wait(10)
    f.wait(lambda: not f.online(), 60, "the device offline (its will)")
    restarted_ms = int(time.time() * 1000)
    f.start_agent()
    f.wait(f.online, 60, "the device online again")
    f.wait(lambda: f.health().get("cfg") == 1 and f.health()["t"] > restarted_ms, 30, "cfg 1 after the restart")
    again = zoned_visit(f, restarted_ms)
    assert any(r.no_alert and r.zones == ["road"] for r in again)
    assert len(f.history()) == 1  # nobody pushed it again

    # A push the device's schema refuses: the reason names the key, and revision 1 stays.
    f.push(REFUSED)
    f.wait(lambda: f.history()[0]["status"] == "refused", 30, "the device's refusal")
    latest = f.history()[0]
    assert latest["rev"] == 2 and "vision.zones[0]" in (latest["reason"] or ""), latest
    time.sleep(6)  # a health report or two
    assert f.health().get("cfg") == 1
    assert f.history()[1]["status"] == "applied"
    # Nothing of this closed the hub's own connection (a second client with the hub's certificate would).
    assert "disconnected from broker" not in f.hub_log.read_text(errors="replace")

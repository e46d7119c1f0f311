"""Escalation end to end on a compressed clock (issue 21, docs/escalation.md): a real Mosquitto,
a real ``xl-hub run`` in its own process, contacts imported with the real ``xl-provision
contacts import``, the county gateway played by sim/mock_webhook.py (its own HMAC check), and
paho clients for the households and the 治安户长's own device.

1. A panic nobody answers: steps 1-4 every 3 s. The hub is killed with SIGKILL as soon as
   step 2 is committed and started again: every step happens once, in order, each at least its
   delay after the one before, and the gateway receives one signed notice per contact of steps
   2-4; the 治安户长's device gets its ``alert`` command.
2. A person alert (6 s between steps: slower than a panic): the 治安户长's device acknowledges it
   at step 2, and the chain stops there: no step 3 however long one waits, the group gets its
   clear, and the console's record says who and by which channel.
"""

from __future__ import annotations

import itertools
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

from hub.db.schema_ops import alerts
from hub.escalation.tables import escalation_steps, escalations
from protocol.codec import decode_alert, decode_command, encode
from protocol.messages import Ack
from protocol.topics import ack_topic, alert_topic, cmd_topic, event_topic
from sim.mock_webhook import MockWebhook
from tests.support.broker import MOSQUITTO, run_broker
from tests.support.events import event_payload
from tests.support.hub_db import armed_now, make_fleet
from tests.support.mqtt_clients import Peer
from tests.support.processes import BIN, run_cli, stop_process
from tests.support.wait import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="mosquitto is not installed"),
]

SECRET = "gateway-secret-0123456789"
PANIC_S, PERSON_S = 3.0, 6.0
ROLES = ("security_head", "grid_worker", "township_duty", "county_desk")
PHONES = ("13812345678", "13900001111", "13722223333", "13655554444")


@dataclass
class Flow:
    work: Path
    engine: Engine
    fleet: dict[str, list[str]]
    hook: MockWebhook
    head: Peer  # the 治安户长's own device (group g001)
    hub_config: Path
    hub_log: Path
    port: int
    hub: subprocess.Popen[bytes] | None = None

    def start_hub(self) -> None:
        starts = self.hub_log.read_text(errors="replace").count("transport: connected") if self.hub_log.exists() else 0
        with open(self.hub_log, "ab") as log:
            self.hub = subprocess.Popen([BIN / "xl-hub", "run", "--config", self.hub_config], stdout=log,
                                        stderr=subprocess.STDOUT, cwd=self.work)  # fmt: skip
        # Subscribed once connected: a panic sent before that would have no session to wait in.
        connected = lambda: self.hub_log.read_text(errors="replace").count("transport: connected") > starts  # noqa: E731
        self.wait(connected, 30, "the hub connected")
        time.sleep(0.5)

    def steps(self, alert_id: str) -> list[tuple[int, int]]:
        with self.engine.connect() as conn:
            q = select(escalation_steps.c.step, escalation_steps.c.at_ms).where(escalation_steps.c.alert_id == alert_id)
            return [(int(r.step), int(r.at_ms)) for r in conn.execute(q.order_by(escalation_steps.c.at_ms))]

    def chain(self, alert_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(escalations).where(escalations.c.alert_id == alert_id)).first()

    def alert_of(self, device: str, kind: str) -> Any:
        with self.engine.connect() as conn:
            q = select(alerts).where(alerts.c.origin_device == device, alerts.c.kind == kind)
            return conn.execute(q).first()

    def wait(self, check: Any, timeout: float, what: str) -> None:
        try:
            wait_for(check, timeout, what, step=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- hub log\n{self.hub_log.read_text(errors='replace')[-4000:]}") from None


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    work = tmp_path_factory.mktemp("escalation-e2e")
    db_url = f"sqlite:///{work / 'hub.sqlite3'}"
    engine = create_engine(db_url)
    fleet = make_fleet(engine, groups=2, per_group=2, **armed_now())
    hook = MockWebhook(SECRET.encode())
    url = hook.start()
    (work / "contacts.csv").write_text(
        "id,name,role,phone,township,village,device_id\n"
        "sh1,王治安,security_head,13812345678,泉山镇,和平村,\n"
        "gw1,李网格,grid_worker,13900001111,,和平村,\n"
        "td1,赵值班,township_duty,13722223333,泉山镇,,\n"
        "cd1,综治中心,county_desk,13655554444,,,\n"
        f"sh2,陈户长,security_head,,,和平村,{fleet['g001'][0]}\n",
        encoding="utf-8",
    )
    out = run_cli(BIN / "xl-provision", "--state", work / "state", "--db", db_url, "contacts", "import",
                  work / "contacts.csv")  # fmt: skip
    assert "5 added or changed" in out
    again = run_cli(BIN / "xl-provision", "--state", work / "state", "--db", db_url, "contacts", "import",
                    work / "contacts.csv")  # fmt: skip
    assert "0 added or changed, 5 unchanged" in again
    with run_broker() as broker:
        doc = {
            "database": {"url": db_url},
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "client_id": "hub-esc"},
            "ingest": {"batch_ms": 10},
            "health": {"check_interval_s": 0.5},
            "alerts": {"ack_timeout_s": 600},
            "metrics": {"enabled": False},
            "escalation": {
                "enabled": True,
                "check_interval_s": 0.2,
                "panic_s": [PANIC_S] * 3,
                "person_s": [PERSON_S] * 3,
                "webhooks": {r: {"url": f"{url}?role={r}", "secret": SECRET, "timeout_s": 2} for r in ROLES},
            },
        }
        hub_config = work / "hub.yaml"
        hub_config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        head = Peer(broker.port, client_id=fleet["g001"][0])
        head.subscribe(cmd_topic(fleet["g001"][0]))
        f = Flow(work, engine, fleet, hook, head, hub_config, work / "hub.log", broker.port)
        f.start_hub()
        try:
            yield f
        finally:
            if f.hub is not None:
                stop_process(f.hub)
            head.close()
            hook.stop()
            engine.dispose()


def commands_to(peer: Peer, timeout: float = 0.5) -> list[Any]:
    out = []
    try:
        while True:
            _topic, payload, _t = peer.get(timeout)
            out.append(decode_command(payload))
    except Exception:  # queue.Empty: nothing more
        return out


def test_a_panic_nobody_answers_climbs_every_step_once_through_a_kill(flow: Flow) -> None:
    origin = flow.fleet["g000"][1]
    household = Peer(flow.port, client_id=origin)
    household.publish(event_topic(origin), event_payload((7 << 32) + 1, "panic"))
    flow.wait(lambda: flow.alert_of(origin, "panic") is not None, 15, "the panic alert")
    alert_id = flow.alert_of(origin, "panic").id
    flow.wait(lambda: [s for s, _ in flow.steps(alert_id)] == [1, 2], 15, "step 2 committed")
    assert flow.hub is not None
    flow.hub.send_signal(signal.SIGKILL)  # in the middle of the chain, maybe mid-delivery
    flow.hub.wait(10)
    killed_ms = int(time.time() * 1000)
    flow.start_hub()
    flow.wait(lambda: flow.chain(alert_id).status == "exhausted", 40, "every step taken")
    flow.wait(lambda: len(flow.hook.bodies) >= 4, 30, "the gateway got steps 2-4")
    time.sleep(2 * PANIC_S)  # nothing more comes
    steps = flow.steps(alert_id)
    assert [s for s, _ in steps] == [1, 2, 3, 4]  # each once, in order
    assert all(b - a >= PANIC_S * 1000 - 50 for (_, a), (_, b) in itertools.pairwise(steps[1:]))
    assert steps[2][1] > killed_ms  # step 3 was the restarted hub's
    mine = sorted((b["step"], b["contact"]["id"]) for b in flow.hook.bodies if b["alert_id"] == alert_id)
    assert mine == [(2, "gw1"), (2, "sh1"), (3, "td1"), (4, "cd1")]
    assert flow.hook.bad_signatures == 0
    commands = [c for c in commands_to(flow.head) if c.op == "alert" and c.args["id"] == alert_id]
    assert commands and commands[0].args["s"] == 2
    log = flow.hub_log.read_text(errors="replace")
    for phone in PHONES:  # the hub's whole log, both runs: import, chain, deliveries
        assert phone not in log
    household.close()


def test_the_security_heads_ack_at_step_2_stops_a_person_chain(flow: Flow) -> None:
    port = flow.port
    origin = flow.fleet["g000"][0]
    household = Peer(port, client_id=origin)
    neighbour = Peer(port)
    neighbour.subscribe(alert_topic("g000"))
    household.publish(event_topic(origin), event_payload((8 << 32) + 1, "person"))
    flow.wait(lambda: flow.alert_of(origin, "person") is not None, 15, "the person alert")
    alert = flow.alert_of(origin, "person")
    flow.wait(lambda: flow.chain(alert.id) is not None and flow.chain(alert.id).step == 2, 20, "step 2")
    steps = flow.steps(alert.id)
    assert steps[1][1] - alert.raised_ms >= PERSON_S * 1000 - 50  # slower than the panic's 3 s
    [command] = [c for c in commands_to(flow.head, 3) if c.op == "alert" and c.args["id"] == alert.id]
    ack = Ack(of="alert", ref_id=alert.id, ok=True, time_ms=int(time.time() * 1000))
    flow.head.publish(ack_topic(flow.fleet["g001"][0]), encode(ack))
    flow.wait(lambda: flow.chain(alert.id).status == "acked", 10, "the chain stopped")
    time.sleep(PERSON_S * 2)
    chain = flow.chain(alert.id)
    assert [s for s, _ in flow.steps(alert.id)] == [1, 2]
    assert (chain.ack_channel, chain.acked_by, chain.ack_step) == ("mqtt", "sh2", 2)
    phases = []
    try:
        while True:
            _t, payload, _ = neighbour.get(0.5)
            got = decode_alert(payload)
            if got.alert_id == alert.id:
                phases.append(got.phase)
    except Exception:
        pass
    assert phases[-1:] == ["clear"]
    assert command.args["k"] == "person"
    household.close()
    neighbour.close()

"""Escalation chains on a manual clock, on SQLite and PostgreSQL (issue 21, docs/escalation.md):
every step once and in order, panic faster than person, the first ack at any level stops the
chain, a pass that dies mid-step is taken again (once), deliveries signed through the forwarder,
and no phone number in any log line or outbox row."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, update

from hub.alerts.engine import Publication
from hub.config_escalation import EscalationConfig, GroupChain, RoleWebhook, escalation_problems
from hub.contacts.csv_import import import_csv
from hub.contacts.store import mask
from hub.contacts.tables import ROLES
from hub.db import make_engine
from hub.db.schema_ops import alerts
from hub.escalation import engine as esc
from hub.escalation import records
from hub.escalation.service import build
from hub.escalation.tables import escalation_notices, escalation_steps, escalations
from hub.forward.forwarder import Forwarder
from hub.forward.tables import forward_outbox
from hub.forward.webhook import verify_signature
from protocol.codec import decode_command
from tests.support.hub_db import make_fleet

SECRET = "s" * 24
T0 = 1_800_000_000_000
PHONES = ("13812345678", "13900001111", "13722223333", "13655554444")


def contacts_csv(head_device: str) -> str:
    return (
        "id,name,role,phone,township,village,device_id\n"
        f"sh1,王治安,security_head,{PHONES[0]},泉山镇,和平村,\n"
        f"gw1,李网格,grid_worker,139-0000-1111,,和平村,\n"
        f"td1,赵值班,township_duty,{PHONES[2]},泉山镇,,\n"
        f"cd1,综治中心,county_desk,{PHONES[3]},,,\n"
        f"sh2,陈户长,security_head,,,和平村,{head_device}\n"
    )


@dataclass
class Publisher:
    """The hub's transport as the MQTT sink sees it: what it was asked to publish."""

    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def publish(self, items: Sequence[tuple[str, bytes, int, Any]], timeout: float = 5.0) -> list[int]:
        self.sent += [(t, p) for t, p, _q, _tr in items]
        return [0 for _ in items]

    def is_connected(self) -> bool:
        return True


@dataclass
class Rig:
    engine: Engine
    fleet: dict[str, list[str]]
    escalator: esc.Escalator
    forwarder: Forwarder
    requests: list[httpx.Request]
    publisher: Publisher
    clears: list[Publication]
    clock: list[float]

    def at(self, ms: int) -> None:
        self.clock[0] = ms / 1000
        self.escalator.run_once()

    def alert(self, alert_id: str, kind: str, group: str = "g000", raised_ms: int = T0) -> None:
        dev = self.fleet[group][1]
        with self.engine.begin() as conn:
            conn.execute(
                alerts.insert().values(id=alert_id, kind=kind, origin_device=dev, household_id=f"HH{group[1:]}01",
                                       group_id=group, raised_ms=raised_ms, published_ms=raised_ms + 5, status="open")
            )  # fmt: skip

    def steps(self, alert_id: str) -> list[tuple[int, int]]:
        with self.engine.connect() as conn:
            q = select(escalation_steps.c.step, escalation_steps.c.at_ms).where(escalation_steps.c.alert_id == alert_id)
            return [(int(r.step), int(r.at_ms)) for r in conn.execute(q.order_by(escalation_steps.c.id))]

    def chain(self, alert_id: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(escalations).where(escalations.c.alert_id == alert_id)).first()

    def notified(self, alert_id: str, step: int) -> set[tuple[str, str]]:
        with self.engine.connect() as conn:
            q = select(escalation_notices.c.channel, escalation_notices.c.target).where(
                escalation_notices.c.alert_id == alert_id, escalation_notices.c.step == step
            )
            return {(r.channel, r.target) for r in conn.execute(q)}


CFG = EscalationConfig(
    enabled=True,
    panic_s=(10.0, 20.0, 30.0),
    person_s=(40.0, 50.0, 60.0),
    groups={"g001": GroupChain(steps=(1, 2, 4))},
    webhooks={r: RoleWebhook(url=f"http://gw.test/{r}", secret=SECRET) for r in ROLES},  # type: ignore[misc]
)


@pytest.fixture
def rig(db_url: str) -> Iterator[Rig]:
    engine = make_engine(db_url)
    fleet = make_fleet(engine, groups=2, per_group=2)
    result = import_csv(engine, contacts_csv(fleet["g001"][0]))
    assert not result.errors and result.changed == 5
    requests: list[httpx.Request] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200)

    publisher, clock = Publisher(), [T0 / 1000]
    clears: list[Publication] = []
    escalator, parts = build(engine, CFG, forward=None, publisher=publisher, publish=clears.extend, platform=None,
                             alerts_engine=None)  # fmt: skip
    escalator.clock = lambda: clock[0]
    forwarder = parts[0]
    assert isinstance(forwarder, Forwarder)
    for sink in forwarder.sinks.values():  # the gateway double behind every role's webhook
        if hasattr(sink, "_http"):
            sink._http = httpx.Client(transport=httpx.MockTransport(gateway))
    yield Rig(engine, fleet, escalator, forwarder, requests, publisher, clears, clock)
    engine.dispose()


def test_every_step_once_in_order_with_signed_deliveries(rig: Rig) -> None:
    rig.alert("a1", "panic")
    rig.at(T0 + 1_000)
    assert rig.steps("a1") == [(1, T0 + 1_000)]
    assert rig.notified("a1", 1) == {("buzzer", "g000"), ("console", "console")}
    rig.at(T0 + 9_999)  # not due yet
    rig.at(T0 + 10_000)
    rig.at(T0 + 10_000)  # a second pass at the same moment takes nothing more
    assert [s for s, _ in rig.steps("a1")] == [1, 2]
    assert rig.notified("a1", 2) == {("console", "console"), ("webhook", "sh1"), ("webhook", "gw1"), ("mqtt", "sh2")}
    rig.at(T0 + 29_999)  # step 3 is due 20 s after step 2 was taken
    assert [s for s, _ in rig.steps("a1")] == [1, 2]
    rig.at(T0 + 30_000)
    assert rig.notified("a1", 3) == {("console", "console"), ("webhook", "td1")}
    rig.at(T0 + 60_000)
    rig.at(T0 + 600_000)
    assert rig.steps("a1") == [(1, T0 + 1_000), (2, T0 + 10_000), (3, T0 + 30_000), (4, T0 + 60_000)]
    assert rig.chain("a1").status == "exhausted"
    assert rig.forwarder.run_once() == 5
    bodies = []
    for req in rig.requests:
        assert verify_signature(SECRET.encode(), req.content, req.headers, now_s=T0 / 1000 + 30, max_skew_s=10**9)
        bodies.append(json.loads(req.content))
    assert sorted((b["step"], b["contact"]["id"]) for b in bodies) == [(2, "gw1"), (2, "sh1"), (3, "td1"), (4, "cd1")]
    assert {b["contact"]["phone"] for b in bodies if b["contact"]["id"] == "gw1"} == {PHONES[1]}  # stored normalised
    [(topic, payload)] = rig.publisher.sent
    command = decode_command(payload)
    assert topic.endswith(f"{rig.fleet['g001'][0]}/cmd") and command.op == "alert"
    assert command.args["id"] == "a1" and command.args["s"] == 2
    with rig.engine.connect() as conn:
        [chain] = records.recent(conn)
    results = {(n["channel"], n["target"]): n["result"] for s in chain["steps"] for n in s["notices"]}
    assert results[("webhook", "cd1")] == "done" and results[("mqtt", "sh2")] == "done"


def test_panic_escalates_faster_than_person(rig: Rig) -> None:
    rig.alert("pa", "panic")
    rig.alert("pe", "person", group="g000", raised_ms=T0)
    rig.at(T0)
    rig.at(T0 + 10_000)
    assert rig.chain("pa").step == 2 and rig.chain("pe").step == 1
    rig.at(T0 + 39_999)
    assert rig.chain("pa").step == 3 and rig.chain("pe").step == 1
    rig.at(T0 + 40_000)
    assert rig.chain("pe").step == 2


def test_a_group_chain_skips_its_steps(rig: Rig) -> None:
    rig.alert("g1", "panic", group="g001")
    for t in (0, 10_000, 30_000, 60_000):
        rig.at(T0 + t)
    # g001 uses steps 1, 2, 4: step 4 comes after the delay before it
    assert [s for s, _ in rig.steps("g1")] == [1, 2, 4]
    assert rig.steps("g1")[2][1] == T0 + 60_000 - 30_000 + 30_000


def test_a_neighbour_ack_at_step_2_stops_the_chain(rig: Rig) -> None:
    rig.alert("a2", "panic")
    rig.at(T0)
    rig.at(T0 + 10_000)
    with rig.engine.begin() as conn:  # what AlertEngine.on_ack writes for a neighbour's ack
        acked = {"status": "closed", "close_reason": "ack", "first_ack_ms": T0 + 12_000}
        conn.execute(update(alerts).where(alerts.c.id == "a2").values(**acked, first_ack_device=rig.fleet["g000"][0]))
    rig.at(T0 + 100_000)
    chain = rig.chain("a2")
    assert [s for s, _ in rig.steps("a2")] == [1, 2]
    assert (chain.status, chain.ack_channel, chain.ack_step, chain.acked_by) == (
        "acked",
        "device",
        2,
        rig.fleet["g000"][0],
    )
    assert rig.clears == []  # the alert engine cleared the group itself


def test_an_operator_taking_over_stops_the_chain_and_clears_the_group(rig: Rig) -> None:
    rig.alert("a3", "person")
    rig.at(T0)
    rig.at(T0 + 40_000)
    with rig.engine.begin() as conn:
        assert esc.ack(conn, "a3", "op1", "console", T0 + 41_000)
        assert not esc.ack(conn, "a3", "op2", "console", T0 + 42_000)  # the first ack wins
    rig.at(T0 + 500_000)
    rig.at(T0 + 501_000)
    chain = rig.chain("a3")
    assert (chain.status, chain.acked_by, chain.ack_step) == ("acked", "op1", 2)
    assert [s for s, _ in rig.steps("a3")] == [1, 2]
    with rig.engine.connect() as conn:
        alert = conn.execute(select(alerts).where(alerts.c.id == "a3")).one()
    assert (alert.status, alert.close_reason) == ("closed", "operator")
    assert [(p.group_id, p.alert.phase) for p in rig.clears] == [("g000", "clear")]  # once


def test_the_security_heads_device_ack_stops_the_chain(rig: Rig) -> None:
    rig.alert("a4", "panic")
    rig.at(T0)
    head = rig.fleet["g001"][0]
    with rig.engine.begin() as conn:
        assert not esc.on_device_ack(conn, "a4", head, True, T0 + 1_000)  # not notified yet
    rig.at(T0 + 10_000)
    with rig.engine.begin() as conn:
        assert not esc.on_device_ack(conn, "a4", rig.fleet["g001"][1], True, T0 + 11_000)  # not a contact's device
        assert esc.on_device_ack(conn, "a4", head, True, T0 + 11_000)
    assert (rig.chain("a4").ack_channel, rig.chain("a4").acked_by) == ("mqtt", "sh2")


def test_a_pass_that_dies_mid_step_takes_it_again_once(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    rig.alert("a5", "panic")
    rig.at(T0)
    real = rig.escalator._record
    calls = {"n": 0}

    def dying(*args: Any, **kw: Any) -> Any:
        calls["n"] += 1
        out = real(*args, **kw)
        if calls["n"] == 1:
            raise RuntimeError("power cut after the notices were written")
        return out

    monkeypatch.setattr(rig.escalator, "_record", dying)
    with pytest.raises(RuntimeError):
        rig.at(T0 + 10_000)
    assert [s for s, _ in rig.steps("a5")] == [1]
    with rig.engine.connect() as conn:  # nothing of the dead step was committed, not even its outbox rows
        assert conn.execute(select(forward_outbox.c.id).where(forward_outbox.c.item_key.like("esc-a5-%"))).all() == []
    rig.at(T0 + 11_000)
    assert [s for s, _ in rig.steps("a5")] == [1, 2]
    assert len([n for n in rig.notified("a5", 2) if n[0] == "webhook"]) == 2


def test_no_phone_number_in_logs_or_outbox(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bad = "id,name,role,phone,township,village,device_id\nx1,某,security_head,12ab34567890,,和平村,\n"
    assert import_csv(rig.engine, bad).errors == ["row 2, column phone: 5 to 15 digits, optionally after a +"]
    assert import_csv(rig.engine, contacts_csv(rig.fleet["g001"][0])).changed == 0  # idempotent re-import
    rig.alert("a6", "panic")
    for t in (0, 10_000, 30_000, 60_000):
        rig.at(T0 + t)

    def echoing(request: httpx.Request) -> httpx.Response:  # a gateway that echoes the number it refused
        return httpx.Response(400, text=f"cannot dial {json.loads(request.content)['contact']['phone']}")

    for name, sink in rig.forwarder.sinks.items():
        if name == "esc-county_desk":
            sink._http = httpx.Client(transport=httpx.MockTransport(echoing))  # type: ignore[attr-defined]
    rig.forwarder.run_once()
    assert "esc-county_desk: dead letter" in caplog.text
    with rig.engine.connect() as conn:
        rows = conn.execute(select(forward_outbox.c.payload, forward_outbox.c.last_error)).all()
    stored = " ".join(f"{r.payload} {r.last_error}" for r in rows)
    for phone in (*PHONES, "139-0000-1111", "12ab34567890"):
        assert phone not in caplog.text, phone
        assert phone not in stored, phone


def test_contacts_csv_names_row_and_column(rig: Rig) -> None:
    text = (
        "id,name,role,phone,village\n"
        "ok1,甲,grid_worker,13800000000,和平村\n"
        "b1,乙,neighbour,13800000001,和平村\n"
        "b2,丙,security_head,13800000002,\n"
        "b3,丁,grid_worker,13800000003,没有村\n"
        "ok1,戊,grid_worker,13800000004,和平村\n"
    )
    errors = import_csv(rig.engine, text).errors
    assert errors == [
        "row 3, column role: one of security_head, grid_worker, township_duty, county_desk",
        "row 4, column village: a security_head serves a village",
        "row 5, column village: no village '没有村' in the registry",
        "row 6, column id: 'ok1' already on row 2",
    ]
    with rig.engine.connect() as conn:
        assert records.recent(conn) == []
    assert import_csv(rig.engine, "id,name\n").errors == ["row 1: missing column 'role'; missing column 'phone'"]
    assert mask("13812345678") == "138****5678" and mask("+8613812345678") == "+86*******5678"


def test_config_errors_name_the_key() -> None:
    bad = EscalationConfig(panic_s=(100.0, 20.0, 30.0), person_s=(40.0, 50.0), groups={"g/x": GroupChain(steps=(2, 3))})
    problems = "\n".join(escalation_problems(bad, "escalation"))
    assert "escalation.person_s" in problems and "escalation.groups.g/x:" in problems
    assert "escalation.groups.g/x.steps" in problems
    slow_panic = EscalationConfig(panic_s=(200.0, 20.0, 30.0))
    assert escalation_problems(slow_panic, "escalation")[0].startswith("escalation.panic_s")
    no_secret = EscalationConfig(webhooks={"county_desk": RoleWebhook(url="http://x")})
    assert escalation_problems(no_secret, "escalation")[0].startswith("escalation.webhooks.county_desk.secret_file")

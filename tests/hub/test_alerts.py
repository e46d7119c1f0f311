"""十户联防 alerts: real broker, real group members' clients, real databases."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from hub.alerts.armed import is_armed
from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import MemoryForwardSink
from hub.core.inbound import Inbound
from hub.core.items import AlertItem
from hub.db import make_engine
from hub.db.schema import households
from hub.db.schema_ops import alarms, alert_acks, alerts
from hub.health.presence import Sighting, apply_sightings
from hub.ingest.batch import BatchProcessor
from hub.service import Hub
from protocol.codec import decode_alert, encode
from protocol.messages import Ack, Event
from protocol.topics import ack_topic, alert_topic, event_topic
from tests.support.broker import run_broker
from tests.support.events import event_payload
from tests.support.hub_config import hub_config
from tests.support.hub_db import make_fleet
from tests.support.mqtt_clients import Peer
from tests.support.wait import wait_for

TZ = ZoneInfo("Asia/Shanghai")


def now_ms() -> int:
    return int(time.time() * 1000)


def test_panic_alerts_the_group_and_an_ack_closes_it(db_url: str) -> None:
    engine = make_engine(db_url)
    fleet = make_fleet(engine, groups=2, per_group=4)
    origin, *neighbours = fleet["g000"]
    outsider = fleet["g001"][0]
    with run_broker() as broker:
        sink = MemoryForwardSink()
        hub = Hub(hub_config(db_url, broker.port), engine=engine, sink=sink)
        hub.start()
        members = [Peer(broker.port, d) for d in neighbours]
        other_group = Peer(broker.port, outsider)
        try:
            assert hub.worker.subscribed.wait(10)
            for m in members:
                m.subscribe(alert_topic("g000"))
            other_group.subscribe(alert_topic("g001"))
            button = Peer(broker.port, origin)
            button.publish(event_topic(origin), event_payload(1, "panic"))

            raised = [decode_alert(m.get(5)[1]) for m in members]  # every neighbour, leader included
            assert {a.phase for a in raised} == {"raise"}
            assert {a.alert_id for a in raised} == {raised[0].alert_id}
            alert = raised[0]
            assert (alert.kind, alert.origin, alert.household) == ("panic", origin, "HH00000")
            assert alert.text == "户0-0"
            assert other_group.received.empty()
            assert [(a.alert_id, a.phase, a.text) for a in sink.of_type(AlertItem)] == [
                (alert.alert_id, "raise", "户0-0")
            ]

            def confirmed() -> bool:  # the broker's PUBACK is recorded by the watcher
                with engine.connect() as conn:
                    return conn.execute(select(alerts.c.published_ms)).scalar() is not None

            wait_for(confirmed, what="raise confirmed by the broker")
            time.sleep(0.2)  # a measurable response time
            responder = members[1]
            responder.publish(
                ack_topic(neighbours[1]), encode(Ack(of="alert", ref_id=alert.alert_id, ok=True, time_ms=now_ms()))
            )
            cleared = [decode_alert(m.get(5)[1]) for m in members]
            assert {(a.alert_id, a.phase) for a in cleared} == {(alert.alert_id, "clear")}
            with engine.connect() as conn:
                row = conn.execute(select(alerts)).one()
                acks = conn.execute(select(alert_acks.c.device_id)).scalars().all()
            assert row.status == "closed" and row.close_reason == "ack"
            assert row.first_ack_device == neighbours[1]
            assert 200 <= row.response_ms < 5000
            assert row.response_ms == row.first_ack_ms - row.raised_ms
            assert acks == [neighbours[1]]
            clear = sink.of_type(AlertItem)[-1]
            assert (clear.phase, clear.origin, clear.response_ms) == ("clear", origin, row.response_ms)
            button.close()
        finally:
            for p in [*members, other_group]:
                p.close()
            hub.stop()
    engine.dispose()


@pytest.fixture
def parts(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    fleet = make_fleet(engine, groups=1, per_group=3)
    sink = MemoryForwardSink()
    directory = Directory(engine, ttl_s=0.0)  # always re-read, so tests can change armed hours
    alert_engine = AlertEngine(directory, AlertConfig(person_score_min=60, debounce_minutes=5, ack_timeout_s=1), sink)
    proc = BatchProcessor(engine, directory, alert_engine, sink, HealthConfig())
    yield engine, fleet["g000"], proc, alert_engine
    engine.dispose()


def set_armed(engine, household: str, frm: str, to: str) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(update(households).where(households.c.id == household).values(armed_from=frm, armed_to=to))


def hhmm(delta_h: int) -> str:
    return (datetime.now(TZ) + timedelta(hours=delta_h)).strftime("%H:%M")


def msg(topic: str, payload: bytes) -> Inbound:
    return Inbound(topic, payload, 1, 1, now_ms())


def test_person_alerts_only_when_armed_and_confident(parts) -> None:  # type: ignore[no-untyped-def]
    engine, devs, proc, _ = parts
    d = devs[0]
    set_armed(engine, "HH00000", hhmm(2), hhmm(4))  # armed later today, not now
    assert proc.process([msg(event_topic(d), event_payload(1, "person"))]).publications == []
    set_armed(engine, "HH00000", hhmm(-1), hhmm(1))  # armed now
    assert proc.process([msg(event_topic(d), event_payload(2, "person", score=30))]).publications == []
    assert proc.process([msg(event_topic(d), event_payload(3, "person", phase="update"))]).publications == []
    pubs = proc.process([msg(event_topic(d), event_payload(4, "person"))]).publications
    assert [(p.group_id, p.alert.kind) for p in pubs] == [("g000", "person")]
    # debounce: a second person in the next minutes does not alert again
    assert proc.process([msg(event_topic(d), event_payload(5, "person"))]).publications == []
    # another household of the group is debounced separately
    assert len(proc.process([msg(event_topic(devs[1]), event_payload(6, "panic"))]).publications) == 1


def test_unacknowledged_alert_times_out(parts) -> None:  # type: ignore[no-untyped-def]
    engine, devs, proc, alert_engine = parts
    pubs = proc.process([msg(event_topic(devs[0]), event_payload(1, "panic"))]).publications
    assert len(pubs) == 1
    with engine.begin() as conn:
        assert alert_engine.expire(conn, now_ms()) == []  # not yet
    with engine.begin() as conn:
        cleared = alert_engine.expire(conn, now_ms() + 1500)
    assert [(p.alert.phase, p.alert.alert_id) for p in cleared] == [("clear", pubs[0].alert.alert_id)]
    with engine.connect() as conn:
        row = conn.execute(select(alerts)).one()
    assert (row.status, row.close_reason, row.response_ms) == ("closed", "timeout", None)
    # a late ack is recorded but does not reopen or re-time the alert
    late = Ack(of="alert", ref_id=row.id, ok=True, time_ms=now_ms())
    assert proc.process([msg(ack_topic(devs[1]), encode(late))]).publications == []
    with engine.connect() as conn:
        assert conn.execute(select(alerts.c.response_ms)).scalar() is None
        assert conn.execute(select(alert_acks.c.device_id)).scalars().all() == [devs[1]]


def test_tamper_and_offline_while_armed_raise_operator_alarms(parts) -> None:  # type: ignore[no-untyped-def]
    engine, devs, proc, _ = parts
    set_armed(engine, "HH00000", hhmm(-1), hhmm(1))
    set_armed(engine, "HH00001", hhmm(-1), hhmm(1))
    set_armed(engine, "HH00002", hhmm(2), hhmm(4))
    proc.process([msg(event_topic(devs[0]), event_payload(1, "tamper"))])
    proc.process([msg(event_topic(devs[2]), event_payload(1, "tamper"))])  # not armed: no alarm
    with engine.begin() as conn:
        apply_sightings(conn, [Sighting(devs[1], now_ms(), True), Sighting(devs[2], now_ms(), True)])
    from hub.health.watcher import Watcher
    from hub.metrics import HubMetrics

    watcher = Watcher(engine, proc.directory, proc.alerts, HealthConfig(), HubMetrics(), proc.sink, lambda pubs: None)
    expired = now_ms() + 3 * 60_000 + 1000  # three missed 60 s heartbeats
    watcher.check(expired)
    open_alarm = alarms.c.cleared_ms.is_(None)
    with engine.connect() as conn:  # offline now, but the alarm waits out health.offline_grace_s
        assert {r.kind for r in conn.execute(select(alarms).where(open_alarm))} == {"tamper"}
    watcher.check(expired + int(HealthConfig().offline_grace_s * 1000))
    with engine.connect() as conn:
        open_ = {(r.device_id, r.kind) for r in conn.execute(select(alarms).where(open_alarm))}
    # devs[0] and devs[1] are armed now; devs[2] is not, so its silence is no alarm
    assert open_ == {(devs[0], "tamper"), (devs[0], "offline_armed"), (devs[1], "offline_armed")}
    assert watcher.metrics.devices.labels("offline")._value.get() == 3
    proc.process([msg(event_topic(devs[1]), event_payload(9, "motion"))])  # back: the alarm clears
    with engine.connect() as conn:
        open_ = {(r.device_id, r.kind) for r in conn.execute(select(alarms).where(open_alarm))}
    assert open_ == {(devs[0], "tamper"), (devs[0], "offline_armed")}


def test_armed_hours_span_midnight_in_shanghai() -> None:
    def at(hh: int, mm: int) -> int:
        return int(datetime(2026, 3, 1, hh, mm, tzinfo=TZ).timestamp() * 1000)

    assert is_armed("22:00", "06:00", at(23, 30))
    assert is_armed("22:00", "06:00", at(5, 59))
    assert not is_armed("22:00", "06:00", at(6, 0))
    assert not is_armed("22:00", "06:00", at(12, 0))
    assert is_armed("09:00", "17:00", at(9, 0)) and not is_armed("09:00", "17:00", at(17, 0))
    assert is_armed("00:00", "00:00", at(12, 0))
    # 14:30 UTC is 22:30 in Shanghai: armed, whatever the server's own zone
    utc = datetime(2026, 3, 1, 14, 30, tzinfo=ZoneInfo("UTC"))
    assert is_armed("22:00", "06:00", int(utc.timestamp() * 1000))
    with pytest.raises(ValueError, match="HH:MM"):
        is_armed("25:00x", "06:00", at(1, 0))


def test_a_raise_the_broker_never_confirmed_is_sent_again(parts) -> None:  # type: ignore[no-untyped-def]
    engine, devs, proc, alert_engine = parts
    (pub,) = proc.process([msg(event_topic(devs[0]), event_payload(1, "panic"))]).publications
    later = now_ms() + alert_engine.RESEND_AFTER_MS + 1000
    with engine.begin() as conn:
        assert alert_engine.unconfirmed(conn, now_ms()) == []  # give the first send its chance
        again = alert_engine.unconfirmed(conn, later)
    assert [(p.group_id, p.alert) for p in again] == [(pub.group_id, pub.alert)]  # same id, same content
    with engine.begin() as conn:
        alert_engine.mark_published(conn, [(pub.alert.alert_id, now_ms())])
        assert alert_engine.unconfirmed(conn, later) == []


def test_a_late_panic_still_alerts_marked_delayed_but_a_late_person_does_not(parts) -> None:  # type: ignore[no-untyped-def]
    """A panic pressed during a 4G outage arrives after alerts.max_event_age_s
    (300 s): it still wakes the neighbours, with its age on the alert, the
    alerts row (console) and the platform payload. A late person event keeps
    today's rule and only goes to storage and the platform."""
    engine, devs, proc, _ = parts
    set_armed(engine, "HH00000", hhmm(-1), hhmm(1))
    ten_min_ago = now_ms() - 600_000
    late_person = encode(Event(event_id=1, kind="person", phase="start", time_ms=ten_min_ago, score=95))
    assert proc.process([msg(event_topic(devs[0]), late_person)]).publications == []
    late_panic = encode(Event(event_id=2, kind="panic", phase="start", time_ms=ten_min_ago, score=100))
    pubs = proc.process([msg(event_topic(devs[0]), late_panic)]).publications
    assert [p.alert.kind for p in pubs] == ["panic"]
    delay = pubs[0].alert.delay_s
    assert delay is not None and 599 <= delay <= 610
    wire = decode_alert(encode(pubs[0].alert))
    assert wire.delay_s == delay  # the neighbours' devices get it too
    with engine.connect() as conn:
        assert conn.execute(select(alerts.c.delay_s).where(alerts.c.kind == "panic")).scalar_one() == delay
    fresh = proc.process([msg(event_topic(devs[1]), event_payload(3, "panic"))]).publications
    assert fresh and fresh[0].alert.delay_s is None

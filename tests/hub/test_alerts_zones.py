"""Person alerts with the devices' zone rules (issue 20): a visit alerts once, on
its first phase without ``na``; devices without zones alert on start as before.

Debounce is 0 here, so every "no alert" below is the per-visit rule, not the
household's debounce window."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update

from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import MemoryForwardSink
from hub.core.inbound import Inbound
from hub.db import make_engine
from hub.db.schema import households
from hub.db.schema_ops import alerts, events
from hub.ingest.batch import BatchProcessor
from protocol.codec import encode
from protocol.messages import Event
from protocol.topics import event_topic
from tests.support.hub_db import make_fleet, not_armed_now

TZ = ZoneInfo("Asia/Shanghai")
VISIT = 12884901931


@pytest.fixture
def parts(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    devs = make_fleet(engine, groups=1, per_group=3)["g000"]
    local = datetime.now(TZ)
    with engine.begin() as conn:  # armed now, for every household
        conn.execute(
            update(households).values(
                armed_from=(local - timedelta(hours=1)).strftime("%H:%M"),
                armed_to=(local + timedelta(hours=1)).strftime("%H:%M"),
            )
        )
    sink = MemoryForwardSink()
    directory = Directory(engine, ttl_s=0.0)
    alert_engine = AlertEngine(directory, AlertConfig(person_score_min=60, debounce_minutes=0), sink)
    yield engine, devs, BatchProcessor(engine, directory, alert_engine, sink, HealthConfig())
    engine.dispose()


def ev(phase: str, *, dt_ms: int = 0, score: int = 85, eid: int = VISIT, **zone_keys: object) -> Event:
    return Event(
        event_id=eid,
        kind="person",
        phase=phase,
        time_ms=int(time.time() * 1000) + dt_ms,
        score=score,
        count=1,
        **zone_keys,  # type: ignore[arg-type]
    )


def send(proc: BatchProcessor, device: str, *events_: Event) -> list[str]:
    """The alerts raised by one batch: their kinds."""
    batch = [Inbound(event_topic(device), encode(e), 1, 1, int(time.time() * 1000)) for e in events_]
    return [p.alert.kind for p in proc.process(batch).publications]


def alert_events(engine) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(alerts.c.origin_device, alerts.c.event_id))]


def test_road_then_gate_alerts_once_on_the_update(parts) -> None:  # type: ignore[no-untyped-def]
    engine, (d, _, _), proc = parts
    road = ev("start", zones=("road",), no_alert=True, profile="night")
    gate = ev("update", dt_ms=6000, zones=("road", "gate"), profile="night")
    assert send(proc, d, road) == []
    assert send(proc, d, gate) == ["person"]
    assert alert_events(engine) == [(d, VISIT)]
    # The same update again, a later one, and the end: the visit has alerted.
    assert send(proc, d, gate) == []
    assert send(proc, d, ev("update", dt_ms=9000, zones=("road", "gate"), score=95)) == []
    assert send(proc, d, ev("end", dt_ms=12000, zones=("road", "gate"), duration_s=12)) == []
    assert alert_events(engine) == [(d, VISIT)]


def test_the_second_update_entering_the_gate_alerts(parts) -> None:  # type: ignore[no-untyped-def]
    """A visit's later updates share one row (the newest kept), so only the first is 'new' to ingest."""
    engine, (d, _, _), proc = parts
    assert send(proc, d, ev("start", zones=("road",), no_alert=True)) == []
    assert send(proc, d, ev("update", dt_ms=3000, zones=("road",), no_alert=True, loiter_s=3)) == []
    assert send(proc, d, ev("update", dt_ms=6000, zones=("road", "gate"))) == ["person"]
    assert alert_events(engine) == [(d, VISIT)]


def test_na_on_every_phase_never_alerts(parts) -> None:  # type: ignore[no-untyped-def]
    engine, (d, _, _), proc = parts
    phases = [
        ev("start", zones=("road",), no_alert=True),
        ev("update", dt_ms=3000, zones=("road",), no_alert=True, loiter_s=30),
        ev("update", dt_ms=6000, zones=("road",), no_alert=True, loiter_s=33),
        ev("end", dt_ms=9000, zones=("road",), no_alert=True, duration_s=9),
    ]
    assert [send(proc, d, p) for p in phases] == [[], [], [], []]
    assert alert_events(engine) == []


def test_an_old_devices_start_alerts_and_nothing_else_does(parts) -> None:  # type: ignore[no-untyped-def]
    engine, (d, d2, _), proc = parts
    assert send(proc, d, ev("start")) == ["person"]
    assert send(proc, d, ev("update", dt_ms=5000, score=95)) == []
    assert send(proc, d, ev("start")) == []  # a re-sent start is a duplicate
    # As before zones: a start below the threshold, or outside armed hours,
    # is the visit's alerting phase; a better update later does not alert.
    assert send(proc, d2, ev("start", eid=7, score=30)) == []
    assert send(proc, d2, ev("update", eid=7, dt_ms=5000, score=95)) == []
    assert alert_events(engine) == [(d, VISIT)]


def test_a_visit_alerts_once_in_one_batch_with_duplicates(parts) -> None:  # type: ignore[no-untyped-def]
    engine, (d, _, _), proc = parts
    start = ev("start", zones=("road",), no_alert=True)
    gate = ev("update", dt_ms=6000, zones=("road", "gate"))
    assert send(proc, d, start, gate, gate, start, gate) == ["person"]
    assert alert_events(engine) == [(d, VISIT)]


def test_an_update_whose_start_never_came_alerts_once(parts) -> None:  # type: ignore[no-untyped-def]
    engine, (d, _, _), proc = parts
    assert send(proc, d, ev("update", zones=("gate",))) == ["person"]
    assert send(proc, d, ev("start", dt_ms=-5000)) == []  # arrives late: the visit has alerted
    # Without zn it is a device from before zones, whose updates never alerted.
    assert send(proc, d, ev("update", eid=8)) == []
    assert alert_events(engine) == [(d, VISIT)]


def test_an_alertable_update_outside_armed_hours_is_stored_not_alerted(parts) -> None:  # type: ignore[no-untyped-def]
    engine, (d, _, _), proc = parts
    with engine.begin() as conn:
        conn.execute(update(households).values(**not_armed_now()))
    assert send(proc, d, ev("start", zones=("road",), no_alert=True), ev("update", dt_ms=10, zones=("gate",))) == []
    assert alert_events(engine) == []
    with engine.connect() as conn:
        stored = conn.execute(select(events.c.phase, events.c.zones, events.c.no_alert).order_by(events.c.phase))
        assert [tuple(r) for r in stored] == [("start", ["road"], True), ("update", ["gate"], False)]

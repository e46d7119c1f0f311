"""Ingest stores the zone keys of events (zn, lo, na, pf) and the profile and
config revision of health (pf, cfg), on SQLite and PostgreSQL (issue 20)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import MemoryForwardSink
from hub.core.inbound import Inbound
from hub.core.items import EventItem
from hub.db import make_engine
from hub.db.schema_ops import events, health_latest
from hub.ingest.batch import BatchProcessor
from protocol.codec import encode
from protocol.messages import Event, Health
from protocol.topics import event_topic, health_topic
from tests.support.hub_db import make_fleet, not_armed_now


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def setup(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    devs = make_fleet(engine, groups=1, per_group=2, **not_armed_now())["g000"]
    sink = MemoryForwardSink()
    directory = Directory(engine, ttl_s=60)
    yield (
        engine,
        devs,
        BatchProcessor(engine, directory, AlertEngine(directory, AlertConfig(), sink), sink, HealthConfig()),
    )
    engine.dispose()


def inbound(topic: str, message: Event | Health, qos: int = 1) -> Inbound:
    return Inbound(topic, encode(message), 1, qos, now_ms())


def person(phase: str, t: int, **kw: object) -> Event:
    return Event(event_id=31, kind="person", phase=phase, time_ms=t, score=80, **kw)  # type: ignore[arg-type]


ZONE_COLUMNS = (events.c.phase, events.c.zones, events.c.loiter_s, events.c.no_alert, events.c.profile)


def test_events_keep_their_zone_keys_and_a_later_update_refreshes_them(setup) -> None:  # type: ignore[no-untyped-def]
    engine, (d, old), proc = setup
    t0 = now_ms()
    proc.process(
        [
            inbound(event_topic(d), person("start", t0, zones=("路",), no_alert=True, profile="night")),
            inbound(event_topic(d), person("update", t0 + 3000, zones=("路",), no_alert=True, loiter_s=3)),
            inbound(event_topic(old), person("start", t0)),  # a device without zones
        ]
    )
    # The update that enters the gate (a later copy of the one update row) replaces the zone keys too.
    proc.process([inbound(event_topic(d), person("update", t0 + 6000, zones=("路", "院门"), profile="night"))])
    with engine.connect() as conn:
        rows = conn.execute(select(events.c.device_id, *ZONE_COLUMNS).order_by(events.c.device_id, events.c.phase))
        stored = [tuple(r) for r in rows]
    assert stored == [
        (d, "start", ["路"], None, True, "night"),
        (d, "update", ["路", "院门"], None, False, "night"),
        (old, "start", None, None, False, None),
    ]
    # What forwarding is handed (the webhook's body): the keys as each phase sent them.
    handed = [
        (i.device_id, i.phase, i.zones, i.loiter_s, i.profile) for i, _ in proc.sink.items if isinstance(i, EventItem)
    ]
    assert handed == [
        (d, "start", ("路",), None, "night"),
        (d, "update", ("路",), 3, None),
        (old, "start", None, None, None),
    ]


def test_health_keeps_profile_and_config_revision_across_deltas(setup) -> None:  # type: ignore[no-untyped-def]
    engine, (d, _), proc = setup
    topic = health_topic(d)
    proc.process([inbound(topic, Health(time_ms=now_ms(), camera="ok", profile="day", config_rev=3), qos=0)])
    proc.process([inbound(topic, Health(time_ms=now_ms(), delta=True, profile="night"), qos=0)])
    with engine.connect() as conn:
        data = conn.execute(select(health_latest.c.data).where(health_latest.c.device_id == d)).scalar_one()
    assert (data["pf"], data["cfg"], data["cam"]) == ("night", 3, "ok")
    proc.process([inbound(topic, Health(time_ms=now_ms(), delta=True, config_rev=4), qos=0)])
    with engine.connect() as conn:
        data = conn.execute(select(health_latest.c.data).where(health_latest.c.device_id == d)).scalar_one()
    assert (data["pf"], data["cfg"]) == ("night", 4)

"""The ingest decision path against real SQLite and PostgreSQL, without a broker."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import MemoryForwardSink
from hub.core.inbound import Inbound
from hub.core.items import EventItem
from hub.db import make_engine
from hub.db.schema import devices
from hub.db.schema_ops import alarms, events, health_history, health_latest, rejections, snapshots
from hub.ingest.batch import BatchProcessor
from hub.registry import Registry
from protocol import limits
from protocol.codec import Snapshot, encode, encode_snapshot
from protocol.messages import Event, Health, State
from protocol.topics import cmd_topic, event_topic, health_topic, snap_topic, state_topic
from tests.support.hub_db import device, make_fleet

JPEG = b"\xff\xd8" + b"x" * 100 + b"\xff\xd9"


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def setup(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    fleet = make_fleet(engine, groups=1, per_group=3)
    sink = MemoryForwardSink()
    directory = Directory(engine, ttl_s=60)
    proc = BatchProcessor(engine, directory, AlertEngine(directory, AlertConfig(), sink), sink, HealthConfig())
    yield engine, fleet["g000"], proc, sink
    engine.dispose()


def inbound(topic: str, payload: bytes, mid: int = 1, qos: int = 1) -> Inbound:
    return Inbound(topic, payload, mid, qos, now_ms())


def ev(event_id: int, phase: str = "start", kind: str = "person", t: int | None = None, **kw: object) -> bytes:
    return encode(Event(event_id=event_id, kind=kind, phase=phase, time_ms=t or now_ms(), score=80, **kw))


def test_duplicates_are_stored_once(setup) -> None:  # type: ignore[no-untyped-def]
    engine, devs, proc, sink = setup
    d = devs[0]
    first = proc.process([inbound(event_topic(d), ev(7)), inbound(event_topic(d), ev(7))])  # dup in batch
    again = proc.process([inbound(event_topic(d), ev(7)), inbound(event_topic(d), ev(7, "end"))])
    assert (first.new_events, first.duplicates) == (1, 1)
    assert (again.new_events, again.duplicates) == (1, 1)
    with engine.connect() as conn:
        rows = conn.execute(select(events.c.event_id, events.c.phase).order_by(events.c.id)).all()
    assert [tuple(r) for r in rows] == [(7, "start"), (7, "end")]
    assert [(i.event_id, i.phase) for i in sink.of_type(EventItem)] == [(7, "start"), (7, "end")]


def test_a_later_update_replaces_an_earlier_one_but_never_the_reverse(setup) -> None:  # type: ignore[no-untyped-def]
    engine, devs, proc, _sink = setup
    d, t0 = devs[0], now_ms()
    proc.process([inbound(event_topic(d), ev(9, "update", t=t0 + 3000, bbox=(100, 100, 200, 300), count=1))])
    proc.process([inbound(event_topic(d), ev(9, "update", t=t0 + 6000, bbox=(400, 100, 500, 300), count=2))])
    proc.process([inbound(event_topic(d), ev(9, "update", t=t0 + 3000, bbox=(100, 100, 200, 300), count=1))])
    with engine.connect() as conn:
        rows = conn.execute(
            select(events.c.count, events.c.bbox, events.c.device_time_ms).where(events.c.phase == "update")
        ).all()
    assert [tuple(r) for r in rows] == [(2, [400, 100, 500, 300], t0 + 6000)]


def test_snapshots_are_stored_once(setup) -> None:  # type: ignore[no-untyped-def]
    engine, devs, proc, sink = setup
    snap = encode_snapshot(Snapshot(event_id=3, phase="start", time_ms=now_ms(), width=320, height=240, jpeg=JPEG))
    cropped = encode_snapshot(
        Snapshot(
            event_id=4, phase="start", time_ms=now_ms(), width=160, height=120, crop=(100, 200, 600, 900), jpeg=JPEG
        )
    )
    proc.process([inbound(snap_topic(devs[0]), snap), inbound(snap_topic(devs[0]), cropped)])
    proc.process([inbound(snap_topic(devs[0]), snap)])
    with engine.connect() as conn:
        stored = conn.execute(
            select(snapshots.c.event_id, snapshots.c.jpeg, snapshots.c.crop).order_by(snapshots.c.event_id)
        ).all()
    assert [tuple(r) for r in stored] == [(3, JPEG, None), (4, JPEG, [100, 200, 600, 900])]
    assert sink.of_type(EventItem) == []  # their events are not stored: nothing to forward yet


def test_events_are_handed_over_with_their_picture_whichever_comes_first(setup) -> None:  # type: ignore[no-untyped-def]
    _engine, devs, proc, sink = setup
    d = devs[0]

    def pic(event_id: int) -> bytes:
        return encode_snapshot(
            Snapshot(
                event_id=event_id,
                phase="start",
                time_ms=now_ms(),
                width=160,
                height=120,
                crop=(100, 200, 600, 900),
                box=(150, 300, 400, 800),
                jpeg=JPEG,
            )
        )

    proc.process([inbound(event_topic(d), ev(1, has_snapshot=True)), inbound(snap_topic(d), pic(1))])  # together
    proc.process([inbound(event_topic(d), ev(2, has_snapshot=True))])  # the event first ...
    proc.process([inbound(snap_topic(d), pic(2))])  # ... then its picture: the event is handed over again
    proc.process([inbound(snap_topic(d), pic(3))])  # the picture first: nothing to forward yet ...
    proc.process([inbound(event_topic(d), ev(3, has_snapshot=True))])  # ... the event finds it stored
    handed = sink.of_type(EventItem)
    assert [(i.event_id, i.snapshot is not None) for i in handed] == [(1, True), (2, False), (2, True), (3, True)]
    for item in (handed[0], handed[2], handed[3]):
        assert item.snapshot is not None
        assert (item.snapshot.jpeg, item.snapshot.width, item.snapshot.crop, item.snapshot.box) == (
            JPEG,
            160,
            (100, 200, 600, 900),
            (150, 300, 400, 800),
        )
        assert (item.device_id, item.kind, item.score, item.household_id) == (d, "person", 80, "HH00000")


def test_a_value_the_platform_items_refuse_is_rejected_and_counted_not_a_failed_batch(setup) -> None:  # type: ignore[no-untyped-def]
    # The wire contract allows an empty box; a forwarded picture may not have one.
    # Refused in ingest, counted, while the rest of the batch is stored.
    engine, devs, proc, sink = setup
    d = devs[0]
    empty_crop = encode_snapshot(
        Snapshot(
            event_id=5,
            phase="start",
            time_ms=now_ms(),
            width=160,
            height=120,
            crop=(100, 200, 100, 900),
            jpeg=JPEG,
            seq=41,
        )
    )
    result = proc.process([inbound(snap_topic(d), empty_crop), inbound(event_topic(d), ev(5, has_snapshot=True))])
    assert [(r.reason, r.detail.startswith("not forwardable")) for r in result.rejected] == [("bad_snapshot", True)]
    assert result.new_events == 1
    assert result.receipts == {d: [41]}  # rejected for good: the device may delete it
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(snapshots)).scalar_one() == 0
        assert conn.execute(select(rejections.c.count).where(rejections.c.reason == "bad_snapshot")).scalar() == 1
    assert [(i.event_id, i.snapshot) for i in sink.of_type(EventItem)] == [(5, None)]


def test_every_rejection_reason_is_counted(setup, db_url: str) -> None:  # type: ignore[no-untyped-def]
    engine, devs, proc, _ = setup
    unknown = device(9, 999)
    revoked = devs[2]
    Registry(engine).revoke_device(revoked, "stolen")
    proc.directory.reload()
    d = event_topic(devs[0])
    cases = {
        "bad_topic": inbound("xl/v1/notadevice/event", ev(1)),
        "wrong_channel": inbound(cmd_topic(devs[0]), b"{}"),
        "unknown_device": inbound(event_topic(unknown), ev(1)),
        "revoked_device": inbound(event_topic(revoked), ev(1)),
        "too_large": inbound(d, b"{" + b" " * limits.MAX_EVENT_BYTES + b"}"),
        "not_utf8": inbound(d, b"\xff\xfe"),
        "not_json": inbound(d, b"{nope"),
        "not_object": inbound(d, b"[1,2]"),
        "bad_version": inbound(d, b'{"v":99,"id":1,"k":"person","p":"start","t":1,"s":1}'),
        "missing_field": inbound(d, b'{"v":1,"k":"person","p":"start","t":1,"s":1}'),
        "bad_field": inbound(d, b'{"v":1,"id":1,"k":"cat","p":"start","t":1,"s":1}'),
        "bad_snapshot": inbound(snap_topic(devs[0]), b"\x00\x09{}"),
    }
    result = proc.process(list(cases.values()))
    assert sorted(r.reason for r in result.rejected) == sorted(cases)
    proc.process([cases["not_json"]])  # the persisted counter accumulates across batches
    with engine.connect() as conn:
        counts = dict(conn.execute(select(rejections.c.reason, rejections.c.count)).all())
        stored = conn.execute(select(func.count()).select_from(events)).scalar_one()
    assert counts == {reason: 2 if reason == "not_json" else 1 for reason in cases}
    assert stored == 0


def test_event_on_another_devices_topic_is_rejected(setup) -> None:  # type: ignore[no-untyped-def]
    # The ACL normally stops this at the broker; the hub checks the topic's device on its own.
    _, _, proc, _ = setup
    result = proc.process([inbound(event_topic(device(1, 777)), ev(1))])
    assert [r.reason for r in result.rejected] == ["unknown_device"]


def test_untrusted_device_time_falls_back_to_receive_time(setup) -> None:  # type: ignore[no-untyped-def]
    engine, devs, proc, _ = setup
    d = event_topic(devs[0])
    good = now_ms() - 1500
    proc.process(
        [
            inbound(d, ev(1, t=good)),
            inbound(d, ev(2, t=1_000)),  # 1970: a Pi without RTC straight after boot
            inbound(d, ev(3, t=now_ms() + 2 * limits.MAX_CLOCK_AHEAD_MS)),  # far in the future
            inbound(d, ev(4, t=good, clock_unsynced=True)),  # the device itself says "unsynced"
        ]
    )
    with engine.connect() as conn:
        rows = {r.event_id: r for r in conn.execute(select(events))}
    assert rows[1].time_trusted and rows[1].time_ms == good
    for eid in (2, 3, 4):
        assert not rows[eid].time_trusted
        assert rows[eid].time_ms == rows[eid].received_ms
    assert rows[2].device_time_ms == 1_000  # kept for diagnosis


def test_health_alarms_raise_and_clear(setup) -> None:  # type: ignore[no-untyped-def]
    engine, devs, proc, _ = setup
    d = health_topic(devs[0])
    bad = Health(
        time_ms=now_ms(),
        camera="error",
        error="no frames",
        disk_free_mb=100,
        throttled=Health.UNDER_VOLTAGE | Health.THROTTLED,
        clock="unsynced",
        outbox_dropped=0,
        interval_s=30,
    )
    proc.process([inbound(d, encode(bad), qos=0)])
    worse = Health(time_ms=now_ms(), outbox_dropped=5, interval_s=30)
    proc.process([inbound(d, encode(worse), qos=0)])

    def open_kinds() -> set[str]:
        with engine.connect() as conn:
            return set(conn.execute(select(alarms.c.kind).where(alarms.c.cleared_ms.is_(None))).scalars())

    assert open_kinds() == {
        "camera_error",
        "disk_low",
        "under_voltage",
        "throttled",
        "clock_unsynced",
        "outbox_dropping",
    }
    good = Health(
        time_ms=now_ms(),
        camera="ok",
        disk_free_mb=9000,
        throttled=Health.UNDER_VOLTAGE_SINCE_BOOT,
        clock="synced",
        outbox_dropped=5,
    )
    proc.process([inbound(d, encode(good), qos=0)])
    assert open_kinds() == set()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(alarms)).scalar_one() == 6  # history kept
        dev = conn.execute(select(devices).where(devices.c.id == devs[0])).one()
        latest = conn.execute(select(health_latest.c.outbox_dropped)).scalar_one()
        buckets = conn.execute(select(health_history)).all()
    assert dev.online and dev.health_interval_s == 30
    assert latest == 5
    # three heartbeats within seconds share one (or, at a boundary, two) 10-minute buckets
    assert sum(b.samples for b in buckets) == 3 and len(buckets) <= 2
    assert min(b.disk_min_mb for b in buckets if b.disk_min_mb is not None) == 100


def test_state_will_marks_offline(setup) -> None:  # type: ignore[no-untyped-def]
    engine, devs, proc, _ = setup
    proc.process([inbound(state_topic(devs[1]), encode(State("online", interval_s=45)))])
    with engine.connect() as conn:
        row = conn.execute(select(devices).where(devices.c.id == devs[1])).one()
    assert row.online and row.health_interval_s == 45
    proc.process([inbound(state_topic(devs[1]), b'{"v":1,"st":"offline"}')])
    with engine.connect() as conn:
        row = conn.execute(select(devices).where(devices.c.id == devs[1])).one()
    assert not row.online and row.state_changed_ms is not None


def test_a_health_delta_is_merged_into_the_latest_report(setup) -> None:  # type: ignore[no-untyped-def]
    engine, devs, proc, _ = setup
    d = health_topic(devs[0])
    full = Health(time_ms=now_ms(), interval_s=1800, camera="ok", cpu_temp_c=51.2, disk_free_mb=9000, outbox_dropped=0)
    proc.process([inbound(d, encode(full), qos=0)])
    # Two deltas in one batch, then one alone: absent keys are unchanged, not unknown.
    delta1 = Health(time_ms=now_ms(), delta=True, camera="error", error="no frames")
    delta2 = Health(time_ms=now_ms(), delta=True, armed=True)
    proc.process([inbound(d, encode(delta1), qos=0), inbound(d, encode(delta2), qos=0)])
    with engine.connect() as conn:
        latest = conn.execute(select(health_latest).where(health_latest.c.device_id == devs[0])).one()
        open_kinds = set(conn.execute(select(alarms.c.kind).where(alarms.c.cleared_ms.is_(None))).scalars())
        dev = conn.execute(select(devices).where(devices.c.id == devs[0])).one()
    data = latest.data
    assert (data["cam"], data["err"], data["arm"], data["temp"], data["disk"], data["hi"]) == (
        "error", "no frames", 1, 51.2, 9000, 1800,
    )  # fmt: skip
    assert "d" not in data and latest.outbox_dropped == 0
    assert open_kinds == {"camera_error"}  # the delta raised it; the unchanged disk raised nothing
    assert dev.health_interval_s == 1800 and dev.armed
    # A delta from a device the hub has no report for is stored as it is.
    lone = health_topic(devs[1])
    proc.process([inbound(lone, encode(Health(time_ms=now_ms(), delta=True, camera="ok")), qos=0)])
    with engine.connect() as conn:
        other = conn.execute(select(health_latest.c.data).where(health_latest.c.device_id == devs[1])).scalar_one()
    assert other["cam"] == "ok" and "d" not in other

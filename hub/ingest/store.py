"""Writes of one ingest batch, all on the caller's connection (one transaction).

Every write is idempotent, because a batch whose commit succeeded but whose
PUBACKs were lost is delivered again after a reconnect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from hub.core.inbound import Accepted, Rejected
from hub.db.bulk import insert_new
from hub.db.dialect import upsert_insert
from hub.db.schema_ops import events, health_history, health_latest, rejections
from protocol.codec import Snapshot
from protocol.messages import Event, Health


def insert_events(conn: Connection, items: Sequence[Accepted]) -> list[Accepted]:
    """Store event phases; returns the ones that were new (not duplicates)."""
    if not items:
        return []
    rows = [_event_row(it) for it in items]
    inserted = insert_new(conn, "events", _EVENT_COLUMNS, rows, _EVENT_KEY, _EVENT_KEY)
    new = _only_new(items, {(r[0], r[1], r[2]) for r in inserted})
    fresh = {id(it) for it in new}
    # An `update` that was not new may still be newer than the stored one.
    later_updates = [it for it in items if id(it) not in fresh and it.message.phase == "update"]  # type: ignore[union-attr]
    if later_updates:
        _refresh_updates(conn, later_updates)
    return new


# Column order of the bulk insert; bbox and zones travel as JSON text.
_EVENT_KEY = ("device_id", "event_id", "phase")
_EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("device_id", "varchar"),
    ("event_id", "bigint"),
    ("phase", "varchar"),
    ("kind", "varchar"),
    ("score", "integer"),
    ("bbox", "json"),
    ("zone", "varchar"),
    ("count", "integer"),
    ("has_snapshot", "boolean"),
    ("duration_s", "integer"),
    ("device_time_ms", "bigint"),
    ("received_ms", "bigint"),
    ("time_ms", "bigint"),
    ("time_trusted", "boolean"),
    ("household_id", "varchar"),
    ("zones", "json"),
    ("loiter_s", "integer"),
    ("no_alert", "boolean"),
    ("profile", "varchar"),
)


def _event_row(it: Accepted) -> tuple[Any, ...]:
    ev = it.message
    assert isinstance(ev, Event)
    return (
        it.device.device_id,
        ev.event_id,
        ev.phase,
        ev.kind,
        ev.score,
        json.dumps(list(ev.bbox)) if ev.bbox is not None else None,
        ev.zone,
        ev.count,
        ev.has_snapshot,
        ev.duration_s,
        ev.time_ms,
        it.received_ms,
        it.time_ms,
        it.time_trusted,
        it.device.household_id,
        json.dumps(list(ev.zones), ensure_ascii=False) if ev.zones else None,
        ev.loiter_s,
        ev.no_alert,
        ev.profile,
    )


def _only_new(items: Sequence[Accepted], inserted: set[tuple[str, int, str]]) -> list[Accepted]:
    """The items whose (device, event id, phase) the insert reported as stored.

    A key repeated inside one batch is new once: the first copy takes it."""
    new = []
    for it in items:
        msg = it.message
        assert isinstance(msg, Event | Snapshot)
        key = (it.device.device_id, msg.event_id, msg.phase)
        if key in inserted:
            inserted.discard(key)
            new.append(it)
    return new


# A long visit sends several `update`s under one (device, event id, phase) key.
# The row keeps the latest of them (by device time): re-sent copies change
# nothing, so this is still idempotent, and older copies never overwrite newer.
_SET_COLUMNS = (
    "score",
    "bbox",
    "zone",
    "count",
    "has_snapshot",
    "device_time_ms",
    "received_ms",
    "time_ms",
    "time_trusted",
    # A later update has entered more zones, loitered longer, or lost its `na`.
    "zones",
    "loiter_s",
    "no_alert",
    "profile",
)
_REFRESH_UPDATE = (
    update(events)
    .where(
        events.c.device_id == bindparam("k_device"),
        events.c.event_id == bindparam("k_event"),
        events.c.phase == "update",
        events.c.device_time_ms < bindparam("k_time"),
    )
    .values({c: bindparam(c) for c in _SET_COLUMNS})
)


def _refresh_updates(conn: Connection, items: list[Accepted]) -> None:
    params = []
    for it in items:
        ev = it.message
        assert isinstance(ev, Event)
        params.append(
            {
                "k_device": it.device.device_id,
                "k_event": ev.event_id,
                "k_time": ev.time_ms,
                "score": ev.score,
                "bbox": list(ev.bbox) if ev.bbox is not None else None,
                "zone": ev.zone,
                "count": ev.count,
                "has_snapshot": ev.has_snapshot,
                "device_time_ms": ev.time_ms,
                "received_ms": it.received_ms,
                "time_ms": it.time_ms,
                "time_trusted": it.time_trusted,
                "zones": list(ev.zones) if ev.zones else None,
                "loiter_s": ev.loiter_s,
                "no_alert": ev.no_alert,
                "profile": ev.profile,
            }
        )
    conn.execute(_REFRESH_UPDATE, params)


_SNAPSHOT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("device_id", "varchar"),
    ("event_id", "bigint"),
    ("phase", "varchar"),
    ("device_time_ms", "bigint"),
    ("received_ms", "bigint"),
    ("width", "integer"),
    ("height", "integer"),
    ("crop", "json"),
    ("box", "json"),
    ("jpeg", "bytea"),
)


def _json_box(box: tuple[int, int, int, int] | None) -> str | None:
    return json.dumps(list(box)) if box is not None else None


def insert_snapshots(conn: Connection, items: Sequence[Accepted]) -> list[Accepted]:
    """Store snapshots through the same batch insert as events; returns the new ones."""
    rows = []
    for it in items:
        snap = it.message
        assert isinstance(snap, Snapshot)
        rows.append(
            (
                it.device.device_id,
                snap.event_id,
                snap.phase,
                snap.time_ms,
                it.received_ms,
                snap.width,
                snap.height,
                _json_box(snap.crop),
                _json_box(snap.box),
                snap.jpeg,
            )
        )
    inserted = insert_new(conn, "snapshots", _SNAPSHOT_COLUMNS, rows, _EVENT_KEY, _EVENT_KEY)
    return _only_new(items, {(r[0], r[1], r[2]) for r in inserted})


def store_health(conn: Connection, items: Sequence[Accepted], bucket_ms: int) -> dict[str, int | None]:
    """Replace each device's latest heartbeat and fold samples into history buckets.

    A delta (``"d":1``, protocol/README.md) is merged into the latest report
    instead: its absent keys are unchanged, not unknown.

    Returns each device's previous ``outbox_dropped`` (before this batch), which
    the alarm rules compare against.
    """
    if not items:
        return {}
    device_ids = sorted({it.device.device_id for it in items})
    rows = conn.execute(
        select(health_latest.c.device_id, health_latest.c.outbox_dropped, health_latest.c.data).where(
            health_latest.c.device_id.in_(device_ids)
        )
    ).all()
    previous: dict[str, int | None] = {r.device_id: r.outbox_dropped for r in rows}
    known: dict[str, dict[str, Any]] = {r.device_id: r.data for r in rows if isinstance(r.data, dict)}
    latest: dict[str, dict[str, Any]] = {}
    buckets: dict[tuple[str, int], dict[str, Any]] = {}
    for it in items:
        h = it.message
        assert isinstance(h, Health)
        dev = it.device.device_id
        data = h.to_wire()
        if h.delta:
            data = {**known.get(dev, {}), **data}
            del data["d"]
        known[dev] = data
        latest[dev] = {
            "device_id": dev,
            "received_ms": it.received_ms,
            "device_time_ms": h.time_ms,
            "data": data,
            "outbox_dropped": data.get("obd"),
        }
        key = (dev, it.received_ms - it.received_ms % bucket_ms)
        b = buckets.get(key) or {"device_id": dev, "bucket_ms": key[1], "samples": 0}
        b["samples"] += 1
        _fold(b, "temp_max", h.cpu_temp_c, max)
        _fold(b, "load_max", h.load1, max)
        _fold(b, "mem_min_mb", h.mem_avail_mb, min)
        _fold(b, "disk_min_mb", h.disk_free_mb, min)
        _fold(b, "throttled_or", h.throttled, lambda a, c: a | c)
        _fold(b, "outbox_max", h.outbox_depth, max)
        if h.camera is not None:
            b["camera"] = h.camera
        buckets[key] = b

    ins = upsert_insert(conn, health_latest)
    conn.execute(
        ins.on_conflict_do_update(
            index_elements=["device_id"],
            set_={c: ins.excluded[c] for c in ("received_ms", "device_time_ms", "data", "outbox_dropped")},
        ),
        list(latest.values()),
    )
    _merge_buckets(conn, buckets)
    return {dev: previous.get(dev) for dev in device_ids}


def _fold(bucket: dict[str, Any], column: str, value: Any, how: Any) -> None:
    if value is None:
        return
    have = bucket.get(column)
    bucket[column] = value if have is None else how(have, value)


def _merge_buckets(conn: Connection, buckets: dict[tuple[str, int], dict[str, Any]]) -> None:
    # Read-merge-write instead of a dialect-specific GREATEST/MAX expression: a
    # device's heartbeats are a minute apart, so two workers merging the same
    # bucket at once is not a case worth SQL gymnastics.
    existing = conn.execute(
        select(health_history).where(
            health_history.c.device_id.in_(sorted({d for d, _ in buckets})),
            health_history.c.bucket_ms.in_(sorted({b for _, b in buckets})),
        )
    ).mappings()
    for row in existing:
        key = (row["device_id"], row["bucket_ms"])
        b = buckets.get(key)
        if b is None:
            continue
        b["samples"] += row["samples"]
        for col, how in (
            ("temp_max", max),
            ("load_max", max),
            ("mem_min_mb", min),
            ("disk_min_mb", min),
            ("outbox_max", max),
        ):
            _fold(b, col, row[col], how)
        _fold(b, "throttled_or", row["throttled_or"], lambda a, c: a | c)
        b.setdefault("camera", row["camera"])
    cols = ("samples", "temp_max", "load_max", "mem_min_mb", "disk_min_mb", "throttled_or", "outbox_max", "camera")
    rows = [{c: b.get(c) for c in ("device_id", "bucket_ms", *cols)} for b in buckets.values()]
    ins = upsert_insert(conn, health_history)
    conn.execute(
        ins.on_conflict_do_update(index_elements=["device_id", "bucket_ms"], set_={c: ins.excluded[c] for c in cols}),
        rows,
    )


def count_rejections(conn: Connection, rejected: Iterable[Rejected], now_ms: int) -> None:
    per_reason: dict[str, tuple[int, Rejected]] = {}
    for r in rejected:
        n, _ = per_reason.get(r.reason, (0, r))
        per_reason[r.reason] = (n + 1, r)
    if not per_reason:
        return
    ins = upsert_insert(conn, rejections)
    rows = [
        {
            "reason": reason,
            "count": n,
            "last_ms": now_ms,
            "last_topic": last.topic[:120],
            "last_detail": last.detail[:200],
        }
        for reason, (n, last) in sorted(per_reason.items())
    ]
    conn.execute(
        ins.on_conflict_do_update(
            index_elements=["reason"],
            set_={
                "count": rejections.c.count + ins.excluded["count"],
                "last_ms": ins.excluded["last_ms"],
                "last_topic": ins.excluded["last_topic"],
                "last_detail": ins.excluded["last_detail"],
            },
        ),
        rows,
    )

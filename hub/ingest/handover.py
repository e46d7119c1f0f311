"""What one batch hands to forwarding: an ``EventItem`` per newly stored event
phase, with its picture when the snapshot is stored too.

An event and its snapshot travel on two topics and arrive in either order,
in one batch or in two. Paired in memory when both came in this batch; a
picture that came in an earlier batch is read from ``snapshots``, and a
picture whose event came in an earlier batch hands that event over again, read
from ``events``, now with the picture (the forwarder's idempotency keys make
that a no-op for a sink that already has the event). One query per table for
the whole batch, and none when nothing is missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, and_, or_, select

from hub.core.inbound import Accepted
from hub.core.items import EventItem, Snapshot, box_of
from hub.db.schema_ops import events, snapshots
from protocol.codec import Snapshot as WireSnapshot
from protocol.messages import Event

Key = tuple[str, int, str]  # (device, event id, phase): the hub's dedup key, shared by an event and its picture


def forward_items(conn: Connection, new_events: Sequence[Accepted], new_snaps: Sequence[Accepted]) -> list[EventItem]:
    """Items for this batch's new events (in order), then for its new pictures of earlier events."""
    pictures: dict[Key, Snapshot] = {}
    for it in new_snaps:
        assert isinstance(it.message, WireSnapshot) and isinstance(it.forward, Snapshot)
        pictures.setdefault(_key(it), it.forward)
    missing = [_key(it) for it in new_events if _wants_picture(it) and _key(it) not in pictures]
    stored_pictures = _stored_pictures(conn, missing)

    out = []
    for it in new_events:
        item = it.forward
        assert isinstance(item, EventItem)
        key = _key(it)
        picture = pictures.pop(key, None) or stored_pictures.get(key)
        out.append(dataclasses.replace(item, snapshot=picture) if picture is not None else item)
    out.extend(_stored_events(conn, list(pictures), pictures))  # what is left: pictures of earlier events
    return out


def _key(it: Accepted) -> Key:
    msg = it.message
    assert isinstance(msg, Event | WireSnapshot)
    return (it.device.device_id, msg.event_id, msg.phase)


def _wants_picture(it: Accepted) -> bool:
    return isinstance(it.message, Event) and it.message.has_snapshot


def _where(table: Table, keys: Sequence[Key]) -> Any:
    return or_(*(and_(table.c.device_id == d, table.c.event_id == e, table.c.phase == p) for d, e, p in keys))


def _stored_pictures(conn: Connection, keys: Sequence[Key]) -> dict[Key, Snapshot]:
    if not keys:
        return {}
    rows = conn.execute(
        select(
            snapshots.c.device_id,
            snapshots.c.event_id,
            snapshots.c.phase,
            snapshots.c.jpeg,
            snapshots.c.width,
            snapshots.c.height,
            snapshots.c.crop,
            snapshots.c.box,
        ).where(_where(snapshots, keys))
    )
    # Stored by ingest after the same checks as a new one (hub.ingest.validate), so this cannot refuse it.
    return {
        (r.device_id, int(r.event_id), r.phase): Snapshot(
            bytes(r.jpeg), int(r.width), int(r.height), box_of(r.crop), box_of(r.box)
        )
        for r in rows
    }


def _stored_events(conn: Connection, keys: Sequence[Key], pictures: dict[Key, Snapshot]) -> list[EventItem]:
    if not keys:
        return []
    rows = {
        (r.device_id, int(r.event_id), r.phase): r for r in conn.execute(select(events).where(_where(events, keys)))
    }
    out = []
    for key in keys:  # in the order the pictures came
        row = rows.get(key)
        if row is None:
            continue  # its event is not stored yet: the event's own hand-over will attach this picture
        out.append(
            EventItem(
                device_id=row.device_id,
                event_id=int(row.event_id),
                phase=row.phase,
                kind=row.kind,
                time_ms=int(row.time_ms),
                score=int(row.score),
                bbox=box_of(row.bbox),
                snapshot=pictures[key],
                household_id=row.household_id,
                clock_unsynced=not row.time_trusted,
                zones=tuple(row.zones) if row.zones else None,
                loiter_s=row.loiter_s,
                profile=row.profile,
            )
        )
    return out

"""The forward item of a clip stored at the hub, built from what ingest stored.

``hub.clips`` calls ``clip_item(conn, …)`` in the transaction that indexes a
clip and hands the result to the ``ForwardSink`` port
(``sink.hand_over(conn, [item])``), exactly as ingest does with events: the
clip's index row and its outbox rows commit together, so a hub that dies
between the two loses nothing and forwards nothing twice.

It is here, in the shared layer, because both sides need it and neither may
import the other: the clip store sits above the forwarder, and the forwarder
must not read the clip store's tables.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, and_, select

from hub.core.forwarding import ForwardSink
from hub.core.items import ClipItem, ClipPerson, box_of, detection_of
from hub.db.schema_ops import events, snapshots

log = logging.getLogger("hub.clips")


class StoredClip(Protocol):
    """What the clip store says about a clip it has just indexed (``hub.clips.receive.StoredClip``)."""

    @property
    def device_id(self) -> str: ...
    @property
    def event_id(self) -> int: ...
    @property
    def path(self) -> Path: ...
    @property
    def bytes(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def start_ms(self) -> int | None: ...
    @property
    def end_ms(self) -> int | None: ...
    @property
    def detections(self) -> list[list[int]]: ...


def hand_over_clips(sink: ForwardSink) -> Callable[[Connection, StoredClip], None]:
    """The clip store's ``on_stored`` hook: the new clip's forward item, handed to ``sink`` on
    the index's own connection (``xl-hub run`` wires it, hub/service.py)."""

    def on_stored(conn: Connection, clip: StoredClip) -> None:
        item = clip_item(
            conn,
            device_id=clip.device_id,
            event_id=clip.event_id,
            path=str(clip.path),
            size=clip.bytes,
            sha256=clip.sha256,
            start_ms=clip.start_ms,
            end_ms=clip.end_ms,
            detections=clip.detections,
        )
        if item is None:
            log.info("clip %s/%s has no event at the hub: kept, not forwarded", clip.device_id, clip.event_id)
            return
        sink.hand_over(conn, [item])

    return on_stored


def clip_item(
    conn: Connection,
    *,
    device_id: str,
    event_id: int,
    path: str,
    size: int,
    sha256: str,
    start_ms: int | None,
    end_ms: int | None,
    detections: Sequence[Sequence[int]] | None = (),
) -> ClipItem | None:
    """The ``ClipItem`` of one stored clip, or None when the hub has no event for it.

    ``start_ms``/``end_ms`` may be unknown (an upload without its Clip-*-Ms
    headers): the visit's first and last phase stand in for them.

    A device uploads a clip only after its outbox (the events) is empty, so a
    clip without its event is a clip of a visit the hub never accepted (an
    unregistered household at the time, say): nothing to attach it to on the
    platform, so it is kept but not forwarded.
    """
    phases = conn.execute(
        select(events.c.phase, events.c.kind, events.c.time_ms, events.c.household_id, events.c.bbox)
        .where(and_(events.c.device_id == device_id, events.c.event_id == event_id))
        .order_by(events.c.time_ms, events.c.id)
    ).all()
    if not phases:
        return None
    # The visit's kind is its most serious phase's (a motion visit becomes a person one).
    rank = {"motion": 0, "tamper": 1, "person": 2, "panic": 3}
    kind = max((p.kind for p in phases), key=lambda k: rank.get(k, 0))
    # The person phases that have their picture: exactly those the 视图库 got as
    # PersonObjects (hub.forward.viid takes person events with a snapshot).
    pictured = conn.execute(
        select(
            events.c.phase,
            events.c.time_ms,
            events.c.bbox,
            snapshots.c.width,
            snapshots.c.height,
            snapshots.c.crop,
            snapshots.c.box,
        )
        .join(
            snapshots,
            and_(
                snapshots.c.device_id == events.c.device_id,
                snapshots.c.event_id == events.c.event_id,
                snapshots.c.phase == events.c.phase,
            ),
        )
        .where(and_(events.c.device_id == device_id, events.c.event_id == event_id, events.c.kind == "person"))
        .order_by(events.c.time_ms, events.c.id)
    ).all()
    persons = tuple(
        ClipPerson(
            phase=p.phase,
            time_ms=int(p.time_ms),
            width=int(p.width),
            height=int(p.height),
            bbox=box_of(p.bbox),
            crop=box_of(p.crop),
            box=box_of(p.box),
        )
        for p in pictured
    )
    first, last = int(phases[0].time_ms), int(phases[-1].time_ms)
    start = first if start_ms is None else start_ms
    end = end_ms if end_ms is not None and end_ms > start else max(last, start + 1)
    return ClipItem(
        device_id=device_id,
        event_id=event_id,
        kind=kind,
        path=path,
        size=size,
        sha256=sha256,
        start_ms=start,
        end_ms=end,
        time_ms=first,
        detections=tuple(detection_of(d) for d in detections or ()),
        persons=persons,
        household_id=phases[0].household_id,
    )

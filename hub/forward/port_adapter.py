"""Plugs the Forwarder into the hub's forwarding seam (``hub.forward_port.ForwardSink``).

Ingest and the alert engine call ``enqueue(conn, kind, payload)`` with plain
dicts inside their transaction; this turns them into items and queues them on
the same connection, so the hand-over commits (or rolls back) with the data.

Snapshots arrive on their own topic, before or after their event. Whichever of
the two is stored second completes the item: the event alone goes to sinks
that do not need a picture (the webhook), and the event with its picture is
queued when both are there (the 视图库 needs it). Per-sink idempotency keys
make the second call a no-op for a sink that already has the item.

Nothing here raises on bad data: an exception would roll back the ingest
transaction, the device would re-send, and the hub would loop on it forever.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, and_, select
from sqlalchemy.exc import NoResultFound

from hub.db.schema_ops import alerts, events, snapshots
from hub.forward.forwarder import Forwarder
from hub.forward.items import AlertItem, EventItem, ForwardItem, Snapshot, box_of
from hub.forward_port import QueueStats

log = logging.getLogger("hub.forward.port")


class ForwarderPort:
    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder

    def enqueue(self, conn: Connection, kind: str, payload: dict[str, Any]) -> None:
        self.enqueue_many(conn, kind, [payload])

    def enqueue_many(self, conn: Connection, kind: str, payloads: Sequence[dict[str, Any]]) -> None:
        items = []
        for payload in payloads:
            try:
                item = self._item(conn, kind, payload)
            except (ValueError, LookupError, TypeError, NoResultFound) as exc:
                log.warning("forward: not forwarding %s %s: %s", kind, _ident(payload), exc)
                continue
            if item is not None:
                items.append(item)
        if items:
            self.forwarder.enqueue_many(conn, items)

    def queue_stats(self) -> QueueStats | None:
        stats = self.forwarder.stats().values()
        return QueueStats(
            depth=sum(s.depth for s in stats), oldest_age_s=max((s.oldest_age_s for s in stats), default=0.0)
        )

    # -- mapping ---------------------------------------------------------------

    def _item(self, conn: Connection, kind: str, p: dict[str, Any]) -> ForwardItem | None:
        if kind == "event":
            snap = self._snapshot(conn, p) if p.get("has_snapshot") else None
            return _event_item(p, snap)
        if kind == "snapshot":
            row = conn.execute(select(events).where(_same_phase(events, p))).mappings().first()
            if row is None:
                return None  # the event is not stored yet; its own enqueue will attach this
            return _event_item(dict(row), self._snapshot(conn, p))
        if kind == "alert":
            return AlertItem(
                alert_id=p["alert_id"],
                phase="raise",
                kind=p["kind"],
                origin=p["origin_device"],
                household_id=p["household_id"],
                time_ms=int(p["raised_ms"]),
                group_id=p.get("group_id"),
                text=p.get("household_name"),
            )
        if kind == "alert_clear":
            origin = conn.execute(select(alerts.c.origin_device).where(alerts.c.id == p["alert_id"])).scalar_one()
            return AlertItem(
                alert_id=p["alert_id"],
                phase="clear",
                kind=p["kind"],
                origin=origin,
                household_id=p["household_id"],
                time_ms=int(p["closed_ms"]),
                group_id=p.get("group_id"),
                close_reason=p.get("close_reason"),
                response_ms=p.get("response_ms"),
            )
        raise ValueError(f"unknown forward kind {kind!r}")

    @staticmethod
    def _snapshot(conn: Connection, p: dict[str, Any]) -> Snapshot | None:
        row = conn.execute(
            select(snapshots.c.jpeg, snapshots.c.width, snapshots.c.height, snapshots.c.crop, snapshots.c.box).where(
                _same_phase(snapshots, p)
            )
        ).first()
        if row is None:
            return None
        try:
            return Snapshot(bytes(row.jpeg), int(row.width), int(row.height), box_of(row.crop), box_of(row.box))
        except (ValueError, TypeError, IndexError) as exc:  # forward the event without a picture rather than not at all
            log.warning("forward: snapshot of %s unusable: %s", _ident(p), exc)
            return None


def _same_phase(table: Any, p: dict[str, Any]) -> Any:
    return and_(
        table.c.device_id == p["device_id"],
        table.c.event_id == int(p["event_id"]),
        table.c.phase == p["phase"],
    )


def _event_item(p: dict[str, Any], snap: Snapshot | None) -> EventItem:
    bbox = p.get("bbox")
    return EventItem(
        device_id=p["device_id"],
        event_id=int(p["event_id"]),
        phase=p["phase"],
        kind=p["kind"],
        time_ms=int(p["time_ms"]),
        score=int(p["score"]),
        bbox=(int(bbox[0]), int(bbox[1]), int(bbox[2]), int(bbox[3])) if bbox else None,
        snapshot=snap,
        household_id=p.get("household_id"),
        clock_unsynced=not p.get("time_trusted", True),
    )


def _ident(p: dict[str, Any]) -> str:
    return str(p.get("alert_id") or f"{p.get('device_id')}-{p.get('event_id')}-{p.get('phase')}")

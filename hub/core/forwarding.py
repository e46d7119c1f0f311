"""The seam between the hub and the platform forwarder (``hub/forward/``).

The hub calls ``sink.enqueue(conn, kind, payload)`` (or ``enqueue_many`` for a
whole ingest batch) *inside* the database
transaction that stores what is being forwarded, so a forwarder that writes
its outbox row on ``conn`` gets exactly-once hand-over for free: either the
event and its outbox row are both committed, or neither is (and the device
re-sends). The hub never waits for the platform.

Kinds and payloads (plain JSON-able dicts; times are epoch milliseconds):

- ``"event"`` — a newly stored event phase (duplicates are not enqueued):
  device_id, event_id, phase, kind, score, bbox, zone, count, has_snapshot,
  duration_s, time_ms, time_trusted, device_time_ms, received_ms,
  household_id, group_id.
- ``"snapshot"`` — a newly stored snapshot; the JPEG stays in the
  ``snapshots`` table, looked up by (device_id, event_id, phase):
  device_id, event_id, phase, time_ms, width, height, size.
- ``"alert"`` — a 十户联防 alert was raised (panic or armed-hours person):
  alert_id, kind, origin_device, household_id, household_name, group_id,
  event_id, raised_ms.
- ``"alert_clear"`` — it closed: alert_id, kind, household_id, group_id,
  closed_ms, close_reason ("ack" | "timeout"), response_ms (None on timeout).

``queue_stats()`` feeds ``/metrics`` (forward queue depth and oldest age);
return None while there is nothing to report.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, event

FORWARD_KINDS = frozenset({"event", "snapshot", "alert", "alert_clear"})


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    oldest_age_s: float


class ForwardSink(Protocol):
    def enqueue(self, conn: Connection, kind: str, payload: dict[str, Any]) -> None: ...

    def enqueue_many(self, conn: Connection, kind: str, payloads: Sequence[dict[str, Any]]) -> None:
        """``enqueue`` of every payload, in order (ingest hands over a whole batch)."""
        ...

    def queue_stats(self) -> QueueStats | None: ...


class MemoryForwardSink:
    """Keeps what would be forwarded in memory, bounded (oldest dropped first).

    Used until the forwarder exists and in tests, which read ``items`` to check
    what the hub handed over. An item becomes visible only when the transaction
    it was enqueued in commits, as a real outbox row would.
    """

    def __init__(self, max_items: int = 10_000) -> None:
        self.items: deque[tuple[str, dict[str, Any], float]] = deque(maxlen=max_items)
        self._pending: dict[int, list[tuple[str, dict[str, Any], float]]] = {}
        self._lock = threading.Lock()

    def enqueue(self, conn: Connection, kind: str, payload: dict[str, Any]) -> None:
        if kind not in FORWARD_KINDS:
            raise ValueError(f"unknown forward kind {kind!r}")
        key = id(conn)
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = []
                event.listen(conn, "commit", lambda _c: self._settle(key, True), once=True)
                event.listen(conn, "rollback", lambda _c: self._settle(key, False), once=True)
            pending.append((kind, dict(payload), time.time()))

    def enqueue_many(self, conn: Connection, kind: str, payloads: Sequence[dict[str, Any]]) -> None:
        for payload in payloads:
            self.enqueue(conn, kind, payload)

    def _settle(self, key: int, committed: bool) -> None:
        with self._lock:
            pending = self._pending.pop(key, [])
            if committed:
                self.items.extend(pending)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for k, p, _ in self.items if k == kind]

    def queue_stats(self) -> QueueStats | None:
        with self._lock:
            if not self.items:
                return QueueStats(0, 0.0)
            return QueueStats(len(self.items), time.time() - self.items[0][2])

"""The port between the hub and the platform forwarder (``hub/forward/``).

Ingest and the alert engine call ``sink.hand_over(conn, items)`` with typed
items (``hub.core.items``) *inside* the database transaction that stores what
is being forwarded, so a forwarder that writes its outbox rows on ``conn``
gets exactly-once hand-over for free: either the data and its outbox rows are
both committed, or neither is (and the device re-sends). The hub never waits
for the platform.

What is handed over, in the order it was stored:

- an ``EventItem`` for every newly stored event phase (duplicates are not
  handed over), with its picture when the snapshot is stored too. A snapshot
  stored after its event hands over the event again, now with its picture:
  the forwarder's per-sink idempotency keys make that a no-op for a sink that
  already has the event, and the 视图库 (which needs the picture) gets it then.
- an ``AlertItem`` with ``phase="raise"`` when a 十户联防 alert is raised, and
  with ``phase="clear"`` when it closes (acknowledged or timed out).
- a ``ClipItem`` when ``hub.clips`` stores a visit's clip (docs/clips.md),
  built by ``hub.core.clips.clip_item`` and handed over in the transaction
  that writes the clip's index row. The clip store sits above the forwarder
  in the layers, so this port is the only way between them, as for ingest.

Items are validated when built, so nothing a sink is handed can be refused
for its values; a sink that raises rolls the whole transaction back.
``queue_stats()`` feeds ``/metrics`` (forward queue depth and oldest age);
it returns None while there is nothing to report.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sqlalchemy import Connection, event

from hub.core.items import ForwardItem

T = TypeVar("T", bound=ForwardItem)


@dataclass(frozen=True, slots=True)
class QueueStats:
    depth: int
    oldest_age_s: float


class ForwardSink(Protocol):
    def hand_over(self, conn: Connection, items: Sequence[ForwardItem]) -> None:
        """Queue ``items``, in order, on ``conn``: they commit or roll back with it."""
        ...

    def queue_stats(self) -> QueueStats | None: ...


class MemoryForwardSink:
    """Keeps what would be forwarded in memory, bounded (oldest dropped first).

    Used when no forwarder is configured and in tests, which read ``items`` to
    check what the hub handed over. An item becomes visible only when the
    transaction it was handed over in commits, as a real outbox row would.
    """

    def __init__(self, max_items: int = 10_000) -> None:
        self.items: deque[tuple[ForwardItem, float]] = deque(maxlen=max_items)
        self._pending: dict[int, list[tuple[ForwardItem, float]]] = {}
        self._lock = threading.Lock()

    def hand_over(self, conn: Connection, items: Sequence[ForwardItem]) -> None:
        if not items:
            return
        key = id(conn)
        now = time.time()
        with self._lock:
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = []
                event.listen(conn, "commit", lambda _c: self._settle(key, True), once=True)
                event.listen(conn, "rollback", lambda _c: self._settle(key, False), once=True)
            pending.extend((item, now) for item in items)

    def _settle(self, key: int, committed: bool) -> None:
        with self._lock:
            pending = self._pending.pop(key, [])
            if committed:
                self.items.extend(pending)

    def of_type(self, kind: type[T]) -> list[T]:
        """The committed items of one type (``EventItem``, ``AlertItem`` or ``ClipItem``), oldest first."""
        with self._lock:
            return [item for item, _ in self.items if isinstance(item, kind)]

    def queue_stats(self) -> QueueStats | None:
        with self._lock:
            if not self.items:
                return QueueStats(0, 0.0)
            return QueueStats(len(self.items), time.time() - self.items[0][1])

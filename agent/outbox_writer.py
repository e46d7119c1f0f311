"""Everything the device sends durably goes through here into the outbox.

It picks the topic and the drop priority, and hands out event IDs from the one
generator of this boot (the pipeline and the panic button share it, so IDs
never collide and sort in the order things happened on the device).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from agent import outbox as ob
from agent.clock import DeviceClock
from agent.outbox import Outbox
from protocol.codec import Snapshot, encode, encode_snapshot
from protocol.ids import EventIdGenerator
from protocol.messages import Ack, Event
from protocol.topics import ack_topic, event_topic, snap_topic

_EVENT_PRIORITY = {"motion": ob.MOTION, "person": ob.PERSON, "tamper": ob.PERSON, "panic": ob.PANIC}
_SNAP_PRIORITY = {"motion": ob.MOTION_SNAP, "person": ob.PERSON_SNAP, "tamper": ob.PERSON_SNAP}


class LockedIds(EventIdGenerator):
    """The boot's one EventIdGenerator, safe to share between the capture thread
    (the vision pipeline) and GPIO callbacks (the panic button)."""

    def __init__(self, boot: int) -> None:
        super().__init__(boot)
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            return super().next()


class OutboxWriter:
    """Events, snapshots, acks and the panic as outbox rows; ``agent.link`` publishes them."""

    def __init__(self, device_id: str, outbox: Outbox, boot: int, clock: DeviceClock) -> None:
        self.device_id = device_id
        self.outbox = outbox
        self.clock = clock
        self.ids = LockedIds(boot)
        # Called after a panic or an ack is stored: the link skips its reconnect backoff.
        self.on_urgent: Callable[[], None] = lambda: None
        # Called with each panic event once stored: the clip recorder keeps the video around it.
        self.on_panic: Callable[[Event], None] = lambda _event: None

    def next_event_id(self) -> int:
        return self.ids.next()

    def event(self, event: Event) -> bool:
        return self.outbox.put(
            event_topic(self.device_id), encode(event), priority=_EVENT_PRIORITY[event.kind], kind=event.kind
        )

    def snapshot(self, snap: Snapshot | bytes, event_kind: str = "motion") -> bool:
        """A snapshot counts at or below its event's priority (a panic's as a person's)."""
        payload = snap if isinstance(snap, bytes) else encode_snapshot(snap)
        priority = _SNAP_PRIORITY.get(event_kind, ob.PERSON_SNAP)
        return self.outbox.put(snap_topic(self.device_id), payload, priority=priority, kind="snap")

    def ack(self, of: str, ref_id: str, ok: bool, error: str | None = None) -> Ack:
        ack = Ack(of=of, ref_id=ref_id, ok=ok, time_ms=self.clock.now_ms(), error=error[:200] if error else None)
        self.outbox.put(ack_topic(self.device_id), encode(ack), priority=ob.ACK, kind="ack")
        self.on_urgent()
        return ack

    def panic(self) -> Event:
        """The household's button held down: a single ``start`` at the highest priority."""
        event = Event(
            event_id=self.next_event_id(),
            kind="panic",
            phase="start",
            time_ms=self.clock.now_ms(),
            score=100,
            clock_unsynced=self.clock.unsynced,
        )
        self.event(event)
        self.on_urgent()
        self.on_panic(event)
        return event

"""Encoded event payloads, as a device would publish them, for the hub and link tests."""

from __future__ import annotations

import time

from protocol.codec import encode
from protocol.messages import Event


def event_payload(event_id: int, kind: str, phase: str = "start", score: int = 90) -> bytes:
    """An event stamped now (the hub alerts only on fresh ones)."""
    return encode(Event(event_id=event_id, kind=kind, phase=phase, time_ms=int(time.time() * 1000), score=score))


def motion_payload(event_id: int, phase: str = "start") -> bytes:
    """A motion event stamped now: stored and counted, but never an alert."""
    return event_payload(event_id, "motion", phase, score=40)


def numbered_event_payload(i: int, kind: str = "person") -> bytes:
    """The ``i``-th event of boot 1 at a fixed time, so a test can tell which arrived."""
    return encode(Event(event_id=(1 << 32) + i, kind=kind, phase="start", time_ms=1_764_138_000_000 + i, score=90))

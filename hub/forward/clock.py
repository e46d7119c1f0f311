"""Time for the forwarder, injectable so tests compress hours into configuration.

Backoff, dead-letter ages, keepalive intervals and lease expiry all read the
clock through this port; nothing in ``hub.forward`` calls ``time.time()``
directly, so a test can advance a :class:`ManualClock` by an hour instead of
sleeping for one.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class ForwardClock(Protocol):
    """The forwarder's one source of time: ``SystemClock`` in the hub, ``ManualClock`` in tests."""

    def now_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch (UTC)."""
        ...


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)


class ManualClock:
    """A clock that moves only when told to (tests, simulations, replays)."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> int:
        with self._lock:
            self._now += round(seconds * 1000)
            return self._now

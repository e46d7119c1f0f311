"""When the link tries the broker again: exponential backoff with full jitter,
and when that backoff starts over.

Full jitter (a delay uniform in ``[0, min(cap, base·2^n)]``) is our own rather
than paho's fixed ``reconnect_delay_set``, so a county-wide outage does not
end with 3,312 devices reconnecting in the same second.

The reset rule was chosen against the faults the field review measured
(``bench/reconnect.py`` replays them): the backoff starts over whenever the
broker accepted a connection, unless that connection *and* the one before it
died young (under ``stable_s``). The old rule (start over only after 30 s
connected) made a device that reconnected just before a broker restart wait
out a grown delay: 62 s after a 5-second outage. Two young deaths in a row
are a flapping broker or link, and then the delay keeps growing, so a sick
broker is not hammered.
"""

from __future__ import annotations

import random

STABLE_S = 30.0  # a connection that died younger than this is a flap when the one before it was too


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^attempt)]."""
    return rng.uniform(0.0, min(cap, base * (2 ** min(attempt, 32))))


class Reconnect:
    """The delay before each connection attempt."""

    def __init__(self, base_s: float, cap_s: float, rng: random.Random, stable_s: float = STABLE_S) -> None:
        self.base_s = base_s
        self.cap_s = cap_s
        self.stable_s = stable_s
        self._rng = rng
        self.attempts = 0  # consecutive attempts since the backoff last started over
        self._last_stable = True  # the first drop after a good connection retries quickly

    def connection_ended(self, lasted_s: float) -> None:
        """A connection the broker had accepted ended after ``lasted_s``."""
        stable = lasted_s >= self.stable_s
        if stable or self._last_stable:
            self.attempts = 0
        self._last_stable = stable

    def next_delay(self) -> float:
        delay = backoff_delay(self.attempts, self.base_s, self.cap_s, self._rng)
        self.attempts += 1
        return delay

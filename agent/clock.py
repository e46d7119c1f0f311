"""The device clock port: wall time for ``t`` fields, and whether it can be trusted.

A Pi has no RTC: until NTP syncs, its wall clock is whatever fake-hwclock saved
at the last shutdown, possibly days behind. Nothing in the agent orders by wall
time (event IDs are boot/seq, the outbox is ordered by seq, timers use
``time.monotonic``); wall time only fills the ``t`` fields, and an event made
while the clock is not synced carries ``u=1`` so the hub uses its receive time.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.watchdog import child_env
from protocol.limits import MIN_SANE_TIME_MS

TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
REFRESH_S = 30.0


def probe_sync(flag: Path = TIMESYNC_FLAG, timedatectl: str | None = "auto") -> str:
    """``synced``, ``unsynced`` or ``unknown`` (off systemd, or no way to tell)."""
    # systemd-timesyncd touches this file once it has synchronised since boot.
    if flag.exists():
        return "synced"
    tool = shutil.which("timedatectl") if timedatectl == "auto" else timedatectl
    if tool:
        try:
            out = subprocess.run(
                [tool, "show", "-p", "NTPSynchronized", "--value"],
                capture_output=True,
                text=True,
                timeout=3,
                check=False,
                env=child_env(),
            )
        except (OSError, subprocess.SubprocessError):
            return "unknown"
        value = out.stdout.strip()
        if out.returncode == 0 and value in ("yes", "no"):
            return "synced" if value == "yes" else "unsynced"
    return "unknown"


class DeviceClock:
    """The Pi's wall clock and its sync state (probed at most every ``REFRESH_S``)."""

    def __init__(
        self,
        probe: Callable[[], str] = probe_sync,
        wall_ms: Callable[[], int] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._state = "unknown"
        self._checked = -REFRESH_S * 2

    def now_ms(self) -> int:
        return self._wall_ms()

    @property
    def state(self) -> str:
        with self._lock:
            now = self.monotonic()
            if now - self._checked >= REFRESH_S:
                self._checked = now
                self._state = self._probe()
            state = self._state
        # A clock before 2024 is wrong whatever the sync service says.
        if self._wall_ms() < MIN_SANE_TIME_MS:
            return "unsynced"
        return state

    @property
    def unsynced(self) -> bool:
        """For the Event ``u`` flag: only a known-bad clock is flagged."""
        return self.state == "unsynced"

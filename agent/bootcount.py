"""The persisted boot counter behind event IDs.

A Pi has no RTC, so event IDs cannot come from the clock (see protocol.ids).
Each agent start bumps a counter on the SD card; IDs are (boot, seq). The file
is written to a temp name, fsynced and renamed, so a power cut leaves either
the old or the new value — never a torn one. If the file is unreadable anyway
(a corrupted card), the caller passes a floor (the highest boot seen in the
outbox) so the counter still moves forward.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from agent.durable import write_atomic


def next_boot(path: Path, floor: int = -1) -> int:
    """Read the last boot number, store and return the next one."""
    last = -1
    with contextlib.suppress(FileNotFoundError, ValueError, OSError):
        last = int(path.read_text(encoding="ascii").strip())
    boot = max(last, floor) + 1
    write_atomic(path, f"{boot}\n".encode("ascii"))
    return boot

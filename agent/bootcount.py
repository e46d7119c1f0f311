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
import os
from pathlib import Path


def next_boot(path: Path, floor: int = -1) -> int:
    """Read the last boot number, store and return the next one."""
    last = -1
    with contextlib.suppress(FileNotFoundError, ValueError, OSError):
        last = int(path.read_text(encoding="ascii").strip())
    boot = max(last, floor) + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write(f"{boot}\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    # fsync the directory so the rename itself survives a power cut.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return boot

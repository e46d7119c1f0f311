"""Maintenance windows: ``HH:MM-HH:MM`` in county time, the hours ``update``
commands may be sent. ``22:30-04:00`` runs over midnight. The device still
waits out its own armed hours and open alerts (docs/ota.md): the window only
keeps the hub from starting downloads when the county does not want them.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

_WINDOW = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])")


class WindowError(ValueError):
    pass


def parse_window(text: str) -> tuple[int, int]:
    """Start and end minute of the day; raises WindowError naming what is wrong."""
    m = _WINDOW.fullmatch(text.strip())
    if m is None:
        raise WindowError(f"window {text!r}: expected HH:MM-HH:MM in county time, e.g. 01:00-05:00")
    start = int(m.group(1)) * 60 + int(m.group(2))
    end = int(m.group(3)) * 60 + int(m.group(4))
    if start == end:
        raise WindowError(f"window {text!r}: start and end are the same minute (leave --window out for any time)")
    return start, end


def in_window(window: str | None, now_ms: int, tz: str) -> bool:
    if window is None:
        return True
    start, end = parse_window(window)
    local = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(tz))
    minute = local.hour * 60 + local.minute
    return start <= minute < end if start < end else minute >= start or minute < end

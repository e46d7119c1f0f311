"""Armed hours: when a household wants a person at the door to alert its group."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo


def parse_hhmm(text: str) -> time:
    try:
        hh, mm = text.split(":")
        return time(int(hh), int(mm))
    except (ValueError, AttributeError):
        raise ValueError(f"armed hours must be HH:MM, got {text!r}") from None


def is_armed(armed_from: str, armed_to: str, at_ms: int, tz: str = "Asia/Shanghai") -> bool:
    """Whether ``at_ms`` falls in [from, to) local time; from > to spans midnight
    (the default 22:00–06:00), from == to means armed all day."""
    start, end = parse_hhmm(armed_from), parse_hhmm(armed_to)
    local = datetime.fromtimestamp(at_ms / 1000, ZoneInfo(tz)).time()
    if start == end:
        return True
    if start < end:
        return start <= local < end
    return local >= start or local < end

"""Armed hours and the manual arm/disarm override, persisted across restarts.

The hub alerts neighbours for a person seen while the house is armed, so the
device reports ``arm`` in every heartbeat. The override and the hours the hub
sets with ``schedule`` live in a small JSON file in the state dir, written
write-temp/fsync/rename like the boot counter, so a power cut never loses a
household's ``disarm``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.durable import write_atomic

# China has one zone and no daylight saving since 1991, so a fixed +08:00 is an
# exact fallback when the Pi image has no tz database.
_CHINA = dt.timezone(dt.timedelta(hours=8), "CST")


def zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError:
        if name in ("Asia/Shanghai", "Asia/Urumqi", "PRC", "Asia/Chongqing"):
            return _CHINA
        raise ValueError(f"unknown time zone {name!r}") from None
    except (ValueError, TypeError):
        raise ValueError(f"unknown time zone {name!r}") from None


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def in_hours(local: dt.datetime, start: str, end: str) -> bool:
    """``start`` > ``end`` spans midnight; ``start == end`` means all day."""
    now = local.hour * 60 + local.minute
    a, b = _minutes(start), _minutes(end)
    if a == b:
        return True
    if a < b:
        return a <= now < b
    return now >= a or now < b


class Arming:
    """Armed = the manual override if one is set, else the armed hours.

    ``arm``/``disarm`` hold until the other one or a new ``schedule`` (which
    hands control back to the hours).
    """

    def __init__(
        self,
        path: Path,
        start: str,
        end: str,
        tz: str = "Asia/Shanghai",
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._path = path
        self._tz = zone(tz)
        self._now = now or (lambda: dt.datetime.now(self._tz))
        self._lock = threading.Lock()
        self.start, self.end = start, end
        self.manual: bool | None = None
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            saved = json.loads(path.read_text(encoding="utf-8"))
            self.start, self.end = str(saved["from"]), str(saved["to"])
            _minutes(self.start), _minutes(self.end)
            manual = saved.get("manual")
            self.manual = None if manual is None else bool(manual)

    @property
    def armed(self) -> bool:
        with self._lock:
            if self.manual is not None:
                return self.manual
            return in_hours(self._now().astimezone(self._tz), self.start, self.end)

    def set_manual(self, armed: bool) -> None:
        with self._lock:
            self.manual = armed
            self._save()

    def set_hours(self, start: str, end: str) -> None:
        with self._lock:
            self.start, self.end, self.manual = start, end, None
            self._save()

    def _save(self) -> None:
        data = json.dumps({"from": self.start, "to": self.end, "manual": self.manual})
        write_atomic(self._path, data.encode("utf-8"))

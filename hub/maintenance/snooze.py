"""Snoozing one open alarm for N hours ("acknowledge, and remind me").

A snooze is not an acknowledgement: the alarm leaves the operators' to-do
list until ``until_ms`` and comes back onto it, unacknowledged, if it is still
open then — a device still offline after the snooze is not silently forgotten.
It silences nothing else: a device-wide silence is a maintenance window.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, delete, select

from hub.db.schema_ops import alarms
from hub.maintenance.tables import alarm_snoozes

MAX_SNOOZE_HOURS = 72  # three days: past that it is maintenance, and deserves a window and a reason


def snooze_alarm(conn: Connection, alarm_id: int, hours: float, user: str, now_ms: int) -> int | None:
    """Snooze an open alarm; returns when it comes back, None if no such open alarm.

    ValueError naming ``hours`` outside (0, MAX_SNOOZE_HOURS]. Snoozing again replaces the snooze.
    """
    if not 0 < hours <= MAX_SNOOZE_HOURS:
        raise ValueError(f"hours: more than 0 and at most {MAX_SNOOZE_HOURS}")
    is_open = conn.execute(select(alarms.c.id).where(alarms.c.id == alarm_id, alarms.c.cleared_ms.is_(None))).first()
    if is_open is None:
        return None
    until = now_ms + int(hours * 3_600_000)
    conn.execute(delete(alarm_snoozes).where(alarm_snoozes.c.alarm_id == alarm_id))
    conn.execute(
        alarm_snoozes.insert().values(alarm_id=alarm_id, until_ms=until, created_by=user[:64], created_ms=now_ms)
    )
    return until


def snoozed(conn: Connection, alarm_ids: Iterable[int], now_ms: int) -> dict[int, tuple[int, str]]:
    """alarm id → (until_ms, by whom) for those snoozed at ``now_ms``."""
    ids = sorted(set(alarm_ids))
    if not ids:
        return {}
    rows = conn.execute(
        select(alarm_snoozes).where(alarm_snoozes.c.alarm_id.in_(ids), alarm_snoozes.c.until_ms > now_ms)
    )
    return {int(r.alarm_id): (int(r.until_ms), str(r.created_by)) for r in rows}

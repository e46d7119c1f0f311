"""Operator alarms: one open row per (device, kind), raised and cleared by rules.

Kinds from heartbeats: camera_error, disk_low, under_voltage, throttled,
clock_unsynced, outbox_dropping. From presence and events while armed:
offline_armed, tamper. From presence at any time: flapping (hub.health.flapping).

A device in a maintenance window (hub.maintenance) gets none of them raised:
the book asks once, at its first raise, which devices are quiet. Not raised
rather than raised silenced, because every rule re-derives its condition from
what is stored or sent again (offline from ``devices``, flapping from
``presence_downs``, heartbeat conditions on the next heartbeat): the alarm of
a device still in trouble when the window ends is raised then, and the open
alarms count on /metrics and the operators' to-do list hold only what needs
someone now. A tamper event during a window is the exception: it is one
event, and is not raised afterwards (the works crew is the likely cause).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, select, update

from hub.db.schema_ops import alarms
from hub.health.tables import alarm_notices
from hub.maintenance.service import Window, quiet_devices
from protocol.messages import Health

HEALTH_KINDS = ("camera_error", "disk_low", "under_voltage", "throttled", "clock_unsynced", "outbox_dropping")


def health_conditions(h: Health, previous_dropped: int | None, disk_low_mb: int) -> dict[str, str | None]:
    """kind → detail when the condition holds, None when it is resolved.

    A kind the heartbeat says nothing about is left out, so an agent that cannot
    measure something neither raises nor clears that alarm.
    """
    out: dict[str, str | None] = {}
    if h.camera is not None:
        failed = h.camera == "error"
        out["camera_error"] = f"camera error: {h.error or 'no detail'}" if failed else None
    if h.disk_free_mb is not None:
        out["disk_low"] = f"{h.disk_free_mb} MB free" if h.disk_free_mb < disk_low_mb else None
    if h.throttled is not None:
        out["under_voltage"] = "under-voltage now" if h.throttled & Health.UNDER_VOLTAGE else None
        out["throttled"] = f"throttled (0x{h.throttled:x})" if h.throttled & Health.THROTTLED else None
    if h.clock is not None:
        out["clock_unsynced"] = "device clock not synchronised" if h.clock == "unsynced" else None
    if h.outbox_dropped is not None and previous_dropped is not None:
        grew = h.outbox_dropped > previous_dropped
        out["outbox_dropping"] = (
            f"outbox dropped {h.outbox_dropped - previous_dropped} more (total {h.outbox_dropped})" if grew else None
        )
    return out


class AlarmBook:
    """Applies wanted alarm states for a set of devices in one transaction."""

    def __init__(self, conn: Connection, device_ids: Iterable[str]) -> None:
        self.conn = conn
        ids = sorted(set(device_ids))
        self.open: set[tuple[str, str]] = set()
        if ids:
            rows = conn.execute(
                select(alarms.c.device_id, alarms.c.kind).where(
                    alarms.c.device_id.in_(ids), alarms.c.cleared_ms.is_(None)
                )
            )
            self.open = {(r.device_id, r.kind) for r in rows}
        self.raised: list[tuple[str, str, str]] = []
        self.cleared: list[tuple[str, str]] = []
        self.silenced: list[tuple[str, str]] = []  # not raised: the device is in maintenance
        self.recovered: list[tuple[str, str]] = []  # cleared with a recovery notice
        self._quiet: dict[str, Window] | None = None

    def quiet(self, device_id: str, now_ms: int) -> Window | None:
        """The maintenance window covering the device; looked up for all devices once per book."""
        if self._quiet is None:
            self._quiet = quiet_devices(self.conn, now_ms)
        return self._quiet.get(device_id)

    def apply(self, device_id: str, wanted: Mapping[str, str | None], now_ms: int) -> None:
        for kind, detail in wanted.items():
            if detail is not None:
                self.raise_(device_id, kind, detail, now_ms)
            else:
                self.clear(device_id, kind, now_ms)

    def raise_(self, device_id: str, kind: str, detail: str, now_ms: int) -> bool:
        if (device_id, kind) in self.open:
            return False
        if self.quiet(device_id, now_ms) is not None:
            self.silenced.append((device_id, kind))
            return False
        self.conn.execute(alarms.insert().values(device_id=device_id, kind=kind, detail=detail[:200], raised_ms=now_ms))
        self.open.add((device_id, kind))
        self.raised.append((device_id, kind, detail))
        return True

    def clear(self, device_id: str, kind: str, now_ms: int) -> bool:
        if (device_id, kind) not in self.open:
            return False
        self.conn.execute(
            update(alarms)
            .where(alarms.c.device_id == device_id, alarms.c.kind == kind, alarms.c.cleared_ms.is_(None))
            .values(cleared_ms=now_ms)
        )
        self.open.discard((device_id, kind))
        self.cleared.append((device_id, kind))
        return True

    def recover(self, device_id: str, kind: str, now_ms: int, why: str) -> bool:
        """Clear an open alarm because its device came back, with a recovery notice.

        Nothing when no alarm of that kind is open: a device back inside its
        grace was never alarmed about, so there is nothing to recover from.
        """
        if (device_id, kind) not in self.open:
            return False
        row = self.conn.execute(
            select(alarms.c.id, alarms.c.raised_ms).where(
                alarms.c.device_id == device_id, alarms.c.kind == kind, alarms.c.cleared_ms.is_(None)
            )
        ).first()
        self.clear(device_id, kind, now_ms)
        if row is not None:
            raised = int(row.raised_ms)
            detail = f"{why}; alarmed for {away_for(now_ms - raised)}"
            record_notice(self.conn, int(row.id), device_id, kind, raised, now_ms, detail)
            self.recovered.append((device_id, kind))
        return True


def record_notice(
    conn: Connection, alarm_id: int, subject: str, kind: str, raised_ms: int, at_ms: int, detail: str
) -> None:
    """A recovery notice for an alarm that was raised and has just been cleared."""
    conn.execute(
        alarm_notices.insert().values(
            alarm_id=alarm_id, device_id=subject, kind=kind, raised_ms=raised_ms, at_ms=at_ms, detail=detail[:200]
        )
    )


def away_for(ms: int) -> str:
    """'3 min 20 s' for a notice's detail."""
    s = max(0, ms // 1000)
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"

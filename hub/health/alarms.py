"""Operator alarms: one open row per (device, kind), raised and cleared by rules.

Kinds from heartbeats: camera_error, disk_low, under_voltage, throttled,
clock_unsynced, outbox_dropping. From presence and events while armed:
offline_armed, tamper.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Connection, select, update

from hub.db.schema_ops import alarms
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

    def apply(self, device_id: str, wanted: Mapping[str, str | None], now_ms: int) -> None:
        for kind, detail in wanted.items():
            if detail is not None:
                self.raise_(device_id, kind, detail, now_ms)
            else:
                self.clear(device_id, kind, now_ms)

    def raise_(self, device_id: str, kind: str, detail: str, now_ms: int) -> None:
        if (device_id, kind) in self.open:
            return
        self.conn.execute(alarms.insert().values(device_id=device_id, kind=kind, detail=detail[:200], raised_ms=now_ms))
        self.open.add((device_id, kind))
        self.raised.append((device_id, kind, detail))

    def clear(self, device_id: str, kind: str, now_ms: int) -> None:
        if (device_id, kind) not in self.open:
            return
        self.conn.execute(
            update(alarms)
            .where(alarms.c.device_id == device_id, alarms.c.kind == kind, alarms.c.cleared_ms.is_(None))
            .values(cleared_ms=now_ms)
        )
        self.open.discard((device_id, kind))
        self.cleared.append((device_id, kind))

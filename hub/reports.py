"""The flat rows ``xl-hub devices | events | alerts | alarms | rejections`` print.

Named ``*_report`` apart from the console's ``list_*`` queries in
``hub/console/ops.py``: those join households and villages, filter and page
for the web pages, and return raw columns; these return printable strings.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select

from hub.db.schema import devices, households
from hub.db.schema_ops import alarms, alerts, events, rejections

TZ = ZoneInfo("Asia/Shanghai")


def local_time(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, TZ).strftime("%Y-%m-%d %H:%M:%S")


def device_report(engine: Engine, *, offline_only: bool = False, status: str | None = None) -> list[dict[str, Any]]:
    open_alarms = (
        select(alarms.c.device_id, func.count().label("n"))
        .where(alarms.c.cleared_ms.is_(None))
        .group_by(alarms.c.device_id)
        .subquery()
    )
    query = (
        select(
            devices.c.id,
            devices.c.household_id,
            households.c.group_id,
            devices.c.status,
            devices.c.online,
            devices.c.last_seen_ms,
            devices.c.agent_version,
            func.coalesce(open_alarms.c.n, 0).label("alarms"),
        )
        .join(households, households.c.id == devices.c.household_id)
        .outerjoin(open_alarms, open_alarms.c.device_id == devices.c.id)
        .order_by(devices.c.id)
    )
    if offline_only:
        query = query.where(devices.c.online.is_(False))
    if status:
        query = query.where(devices.c.status == status)
    with engine.connect() as conn:
        return [
            {
                "device": r.id,
                "household": r.household_id,
                "group": r.group_id,
                "status": r.status,
                "online": bool(r.online),
                "last_seen": local_time(r.last_seen_ms),
                "version": r.agent_version or "",
                "open_alarms": int(r.alarms),
            }
            for r in conn.execute(query)
        ]


def event_report(
    engine: Engine, *, device: str | None = None, kind: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    query = select(events).order_by(events.c.time_ms.desc(), events.c.id.desc()).limit(limit)
    if device:
        query = query.where(events.c.device_id == device)
    if kind:
        query = query.where(events.c.kind == kind)
    with engine.connect() as conn:
        return [
            {
                "time": local_time(r.time_ms),
                "trusted": bool(r.time_trusted),
                "device": r.device_id,
                "event_id": r.event_id,
                "phase": r.phase,
                "kind": r.kind,
                "score": r.score,
                "zone": r.zone or "",
                "snapshot": bool(r.has_snapshot),
            }
            for r in conn.execute(query)
        ]


def alert_report(engine: Engine, *, open_only: bool = False, limit: int = 50) -> list[dict[str, Any]]:
    query = select(alerts).order_by(alerts.c.raised_ms.desc()).limit(limit)
    if open_only:
        query = query.where(alerts.c.status == "open")
    with engine.connect() as conn:
        return [
            {
                "raised": local_time(r.raised_ms),
                "alert": r.id,
                "kind": r.kind,
                "household": r.household_id,
                "group": r.group_id,
                "status": r.status,
                "closed_by": r.close_reason or "",
                "responder": r.first_ack_device or "",
                "response_s": None if r.response_ms is None else round(r.response_ms / 1000, 1),
            }
            for r in conn.execute(query)
        ]


def alarm_report(engine: Engine, *, open_only: bool = True, limit: int = 200) -> list[dict[str, Any]]:
    query = select(alarms).order_by(alarms.c.raised_ms.desc()).limit(limit)
    if open_only:
        query = query.where(alarms.c.cleared_ms.is_(None))
    with engine.connect() as conn:
        return [
            {
                "raised": local_time(r.raised_ms),
                "device": r.device_id,
                "kind": r.kind,
                "detail": r.detail or "",
                "cleared": local_time(r.cleared_ms),
            }
            for r in conn.execute(query)
        ]


def rejection_report(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [
            {
                "reason": r.reason,
                "count": int(r._mapping["count"]),
                "last": local_time(r.last_ms),
                "last_topic": r.last_topic or "",
                "last_detail": r.last_detail or "",
            }
            for r in conn.execute(select(rejections).order_by(rejections.c.count.desc()))
        ]

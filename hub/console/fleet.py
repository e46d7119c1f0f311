"""Read queries about the fleet: overview, device table and one device.

Filters travel as bound parameters; sorting happens in Python over a
whitelist of keys, because half the sortable columns (temperature, fps, …)
live inside the heartbeat JSON, where SQL sorting differs per backend. The
whole county is ~3,300 rows, which Python sorts in about a millisecond.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, case, func, or_, select

from hub.console.i18n import local_midnight_ms
from hub.console.tables import console_alarm_acks
from hub.db.places import devices_with_place
from hub.db.schema import devices, groups, households, townships, villages
from hub.db.schema_ops import alarms, alerts, commands, events, health_history, health_latest

UNDER_VOLTAGE_NOW, THROTTLED_NOW = 0x1, 0x4
STATUS_FILTERS = ("online", "offline", "armed", "revoked", "alarm")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _badness(d: dict[str, Any], now_ms: int) -> tuple[float, list[str]]:
    """Higher is worse, with the reasons an operator reads in the overview."""
    if d["status"] != "active":
        return -1.0, []
    score, why = 0.0, []
    if not d["online"]:
        hours = 0 if d["last_seen_ms"] is None else (now_ms - d["last_seen_ms"]) / 3_600_000
        score += 100 + min(hours, 72)
        why.append("offline")
    if d["open_alarms"]:
        score += 15 * d["open_alarms"]
        why.extend(d["alarm_kinds"])
    if d["cam"] == "error" and "camera_error" not in why:
        score += 40
        why.append("camera_error")
    temp = d["temp"]
    if temp is not None and temp >= 70:
        score += 30 if temp >= 80 else 10
        why.append(f"{temp:.0f}°C")
    if d["thr"] and d["thr"] & (UNDER_VOLTAGE_NOW | THROTTLED_NOW) and "throttled" not in why:
        score += 20
        why.append(f"thr 0x{d['thr']:x}")
    if d["ob"]:
        score += min(d["ob"], 500) / 50
        why.append(f"outbox {d['ob']}")
    return score, why


def device_rows(
    conn: Connection,
    now_ms: int,
    *,
    q: str = "",
    village: int | None = None,
    group: str = "",
    township: str = "",
    status: str = "",
) -> list[dict[str, Any]]:
    open_alarms = select(alarms.c.device_id, alarms.c.kind).where(alarms.c.cleared_ms.is_(None)).subquery()
    query = select(
        devices.c.id,
        devices.c.household_id,
        devices.c.status,
        devices.c.online,
        devices.c.armed,
        devices.c.last_seen_ms,
        devices.c.agent_version,
        households.c.name.label("hh_name"),
        households.c.group_id,
        villages.c.id.label("village_id"),
        villages.c.name.label("village"),
        townships.c.code.label("township_code"),
        townships.c.name.label("township"),
        health_latest.c.data,
    ).select_from(devices_with_place())
    if q:
        like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(
                devices.c.id.like(like, escape="\\"),
                devices.c.household_id.like(like, escape="\\"),
                households.c.name.like(like, escape="\\"),
            )
        )
    if village is not None:
        query = query.where(villages.c.id == village)
    if group:
        query = query.where(households.c.group_id == group)
    if township:
        query = query.where(townships.c.code == township)
    if status == "revoked":
        query = query.where(devices.c.status == "revoked")
    elif status in ("online", "offline", "armed"):
        query = query.where(devices.c.status == "active")
        if status == "armed":
            query = query.where(devices.c.armed.is_(True), devices.c.online.is_(True))
        else:
            query = query.where(devices.c.online.is_(status == "online"))
    kinds: dict[str, list[str]] = {}
    for alarm in conn.execute(select(open_alarms.c.device_id, open_alarms.c.kind)):
        kinds.setdefault(alarm.device_id, []).append(alarm.kind)
    out = []
    for r in conn.execute(query):
        h = r.data or {}
        d = {
            "id": r.id,
            "household_id": r.household_id,
            "household": r.hh_name or r.household_id,
            "group": r.group_id,
            "village_id": r.village_id,
            "village": r.village,
            "township_code": r.township_code,
            "township": r.township,
            "status": r.status,
            "online": bool(r.online) and r.status == "active",
            "armed": bool(r.armed),
            "last_seen_ms": r.last_seen_ms,
            "version": r.agent_version or h.get("ver"),
            "temp": _num(h.get("temp")),
            "thr": h.get("thr"),
            "fps": _num(h.get("fps")),
            "inf": _num(h.get("inf")),
            "ob": h.get("ob"),
            "cam": h.get("cam"),
            "open_alarms": len(kinds.get(r.id, [])),
            "alarm_kinds": sorted(kinds.get(r.id, [])),
        }
        d["badness"], d["problems"] = _badness(d, now_ms)
        out.append(d)
    if status == "alarm":
        out = [d for d in out if d["open_alarms"]]
    return out


def _none_last(v: Any) -> tuple[int, Any]:
    return (1, 0) if v is None else (0, v)


SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "id": lambda d: d["id"],
    "household": lambda d: d["household"],
    "village": lambda d: (d["township"], d["village"]),
    "group": lambda d: d["group"],
    "status": lambda d: (d["status"] != "active", d["online"], not d["armed"]),
    "last_seen": lambda d: _none_last(d["last_seen_ms"]),
    "temp": lambda d: _none_last(d["temp"]),
    "thr": lambda d: _none_last(d["thr"]),
    "fps": lambda d: _none_last(d["fps"]),
    "inf": lambda d: _none_last(d["inf"]),
    "ob": lambda d: _none_last(d["ob"]),
    "version": lambda d: d["version"] or "",
    "health": lambda d: -d["badness"],
}


def sort_rows(rows: list[dict[str, Any]], key: str, desc: bool) -> list[dict[str, Any]]:
    fn = SORT_KEYS.get(key, SORT_KEYS["health"])  # an unknown key is ignored, never interpreted
    return sorted(rows, key=fn, reverse=desc)


@dataclass(frozen=True, slots=True)
class Counts:
    devices: int
    online: int
    offline: int
    armed: int
    revoked: int
    open_alerts: int
    open_alarms: int
    unacked_alarms: int
    events_today: int
    persons_today: int
    panics_today: int


def counts(conn: Connection, now_ms: int) -> Counts:
    active = devices.c.status == "active"
    row = conn.execute(
        select(
            func.count().filter(active),
            func.count().filter(active, devices.c.online.is_(True)),
            func.count().filter(active, devices.c.online.is_(True), devices.c.armed.is_(True)),
            func.count().filter(devices.c.status == "revoked"),
        )
    ).one()
    n_alerts = conn.execute(select(func.count()).where(alerts.c.status == "open")).scalar_one()
    alarm_row = conn.execute(
        select(func.count(), func.count(console_alarm_acks.c.alarm_id))
        .select_from(alarms.outerjoin(console_alarm_acks, console_alarm_acks.c.alarm_id == alarms.c.id))
        .where(alarms.c.cleared_ms.is_(None))
    ).one()
    start = events.c.phase == "start"
    ev = conn.execute(
        select(
            func.count(), func.count().filter(events.c.kind == "person"), func.count().filter(events.c.kind == "panic")
        ).where(start, events.c.time_ms >= local_midnight_ms(now_ms))
    ).one()
    return Counts(
        devices=row[0],
        online=row[1],
        offline=row[0] - row[1],
        armed=row[2],
        revoked=row[3],
        open_alerts=n_alerts,
        open_alarms=alarm_row[0],
        unacked_alarms=alarm_row[0] - alarm_row[1],
        events_today=ev[0],
        persons_today=ev[1],
        panics_today=ev[2],
    )


def breakdown(conn: Connection) -> list[dict[str, Any]]:
    """Township → village: devices, online, armed; townships carry their villages' sums."""
    active = devices.c.status == "active"
    query = (
        select(
            townships.c.code,
            townships.c.name.label("township"),
            villages.c.id,
            villages.c.name,
            func.count(devices.c.id).filter(active).label("n"),
            func.sum(case((active & devices.c.online.is_(True), 1), else_=0)).label("online"),
            func.sum(case((active & devices.c.online.is_(True) & devices.c.armed.is_(True), 1), else_=0)).label(
                "armed"
            ),
        )
        .select_from(
            villages.join(townships, townships.c.code == villages.c.township_code)
            .outerjoin(households, households.c.village_id == villages.c.id)
            .outerjoin(devices, devices.c.household_id == households.c.id)
        )
        .group_by(townships.c.code, townships.c.name, villages.c.id, villages.c.name)
        .order_by(townships.c.code, villages.c.name)
    )
    out: list[dict[str, Any]] = []
    for r in conn.execute(query):
        if not out or out[-1]["code"] != r.code:
            out.append({"code": r.code, "name": r.township, "n": 0, "online": 0, "armed": 0, "villages": []})
        t = out[-1]
        v = {"id": r.id, "name": r.name, "n": int(r.n or 0), "online": int(r.online or 0), "armed": int(r.armed or 0)}
        t["villages"].append(v)
        for k in ("n", "online", "armed"):
            t[k] += v[k]
    return out


def filter_choices(conn: Connection) -> dict[str, list[Any]]:
    vil = conn.execute(
        select(villages.c.id, villages.c.name, townships.c.name.label("town"))
        .join(townships, townships.c.code == villages.c.township_code)
        .order_by(townships.c.code, villages.c.name)
    ).all()
    grp = conn.execute(select(groups.c.id).order_by(groups.c.id)).scalars().all()
    return {"villages": [(v.id, f"{v.town} · {v.name}") for v in vil], "groups": [(g, g) for g in grp]}


def device_detail(conn: Connection, device_id: str, now_ms: int, hours: int = 24) -> dict[str, Any] | None:
    base = (
        select(
            devices,
            households.c.name.label("hh_name"),
            households.c.group_id,
            households.c.armed_from,
            households.c.armed_to,
            villages.c.name.label("village"),
            townships.c.name.label("township"),
        )
        .join(households, households.c.id == devices.c.household_id)
        .join(villages, villages.c.id == households.c.village_id)
        .join(townships, townships.c.code == villages.c.township_code)
        .where(devices.c.id == device_id)
    )
    row = conn.execute(base).mappings().first()
    if row is None:
        return None
    latest = conn.execute(select(health_latest).where(health_latest.c.device_id == device_id)).mappings().first()
    since = now_ms - hours * 3_600_000
    history = (
        conn.execute(
            select(health_history)
            .where(health_history.c.device_id == device_id, health_history.c.bucket_ms >= since)
            .order_by(health_history.c.bucket_ms)
        )
        .mappings()
        .all()
    )
    alarm_rows = (
        conn.execute(
            select(alarms, console_alarm_acks.c.user_name.label("ack_user"), console_alarm_acks.c.ack_ms)
            .outerjoin(console_alarm_acks, console_alarm_acks.c.alarm_id == alarms.c.id)
            .where(alarms.c.device_id == device_id)
            .order_by(alarms.c.cleared_ms.is_not(None), alarms.c.raised_ms.desc())
            .limit(20)
        )
        .mappings()
        .all()
    )
    recent_events = (
        conn.execute(
            select(events)
            .where(events.c.device_id == device_id)
            .order_by(events.c.time_ms.desc(), events.c.id.desc())
            .limit(15)
        )
        .mappings()
        .all()
    )
    cmds = (
        conn.execute(
            select(commands)
            .where(commands.c.device_id == device_id)
            .order_by(commands.c.sent_ms.desc().nulls_last(), commands.c.ack_ms.desc())
            .limit(10)
        )
        .mappings()
        .all()
    )
    return {
        "device": dict(row),
        "online": bool(row["online"]) and row["status"] == "active",
        "health": None if latest is None else {"received_ms": latest["received_ms"], **(latest["data"] or {})},
        "history": [dict(h) for h in history],
        "alarms": [dict(a) for a in alarm_rows],
        "events": [dict(e) for e in recent_events],
        "commands": [dict(c) for c in cmds],
    }

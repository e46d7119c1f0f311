"""Read queries about what happened: events, snapshots, alerts, alarms, groups, forwarding."""

from __future__ import annotations

import statistics
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select
from sqlalchemy.orm import aliased

from hub.console.tables import console_alarm_acks
from hub.contacts.store import mask
from hub.db.schema import devices, groups, households, villages
from hub.db.schema_ops import alarms, alerts, events, snapshots

KINDS = ("motion", "person", "panic", "tamper")


def _snap_join() -> Any:
    return snapshots, and_(
        snapshots.c.device_id == events.c.device_id,
        snapshots.c.event_id == events.c.event_id,
        snapshots.c.phase == events.c.phase,
    )


def list_events(
    conn: Connection,
    *,
    kind: str = "",
    village: int | None = None,
    device: str = "",
    since_ms: int | None = None,
    until_ms: int | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], int]:
    """Newest first, with the id of the snapshot stored for the same phase (if any)."""
    snap, on = _snap_join()
    query = (
        select(events, snap.c.id.label("snap_id"), households.c.name.label("hh_name"), villages.c.name.label("village"))
        .outerjoin(snap, on)
        .outerjoin(households, households.c.id == events.c.household_id)
        .outerjoin(villages, villages.c.id == households.c.village_id)
    )
    conds = []
    if kind in KINDS:
        conds.append(events.c.kind == kind)
    if village is not None:
        conds.append(households.c.village_id == village)
    if device:
        conds.append(events.c.device_id == device)
    if since_ms is not None:
        conds.append(events.c.time_ms >= since_ms)
    if until_ms is not None:
        conds.append(events.c.time_ms < until_ms)
    total_q = (
        select(func.count())
        .select_from(events.outerjoin(households, households.c.id == events.c.household_id))
        .where(*conds)
    )
    total = int(conn.execute(total_q).scalar_one())
    if before_id is not None:
        pivot = conn.execute(select(events.c.time_ms).where(events.c.id == before_id)).scalar()
        if pivot is not None:
            conds.append(or_(events.c.time_ms < pivot, and_(events.c.time_ms == pivot, events.c.id < before_id)))
    rows = (
        conn.execute(
            query.where(*conds).order_by(events.c.time_ms.desc(), events.c.id.desc()).limit(max(1, min(limit, 500)))
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows], total


def event_detail(conn: Connection, row_id: int) -> dict[str, Any] | None:
    snap, on = _snap_join()
    row = (
        conn.execute(
            select(
                events,
                snap.c.id.label("snap_id"),
                households.c.name.label("hh_name"),
                households.c.group_id,
                villages.c.name.label("village"),
            )
            .outerjoin(snap, on)
            .outerjoin(households, households.c.id == events.c.household_id)
            .outerjoin(villages, villages.c.id == households.c.village_id)
            .where(events.c.id == row_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    out = dict(row)
    phases = (
        conn.execute(
            select(events.c.id, events.c.phase, events.c.time_ms, events.c.score, events.c.bbox, events.c.duration_s)
            .where(events.c.device_id == row["device_id"], events.c.event_id == row["event_id"])
            .order_by(events.c.time_ms, events.c.id)
        )
        .mappings()
        .all()
    )
    out["phases"] = [dict(p) for p in phases]
    picture = None
    if row["snap_id"] is not None:
        picture = (
            conn.execute(
                select(snapshots.c.id, snapshots.c.width, snapshots.c.height, snapshots.c.crop).where(
                    snapshots.c.id == row["snap_id"]
                )
            )
            .mappings()
            .first()
        )
    else:  # a picture of another phase of the same visit is still the best evidence there is
        picture = (
            conn.execute(
                select(snapshots.c.id, snapshots.c.width, snapshots.c.height, snapshots.c.crop)
                .where(snapshots.c.device_id == row["device_id"], snapshots.c.event_id == row["event_id"])
                .order_by(snapshots.c.id)
                .limit(1)
            )
            .mappings()
            .first()
        )
    out["picture"] = None if picture is None else dict(picture)
    out["box"] = box_in_picture(row["bbox"], None if picture is None else picture["crop"])
    return out


def box_in_picture(bbox: Any, crop: Any) -> tuple[float, float, float, float] | None:
    """The event box as percentages of the picture; the picture may be a crop of the frame."""
    if not bbox or len(bbox) != 4:
        return None
    cx1, cy1, cx2, cy2 = (
        crop if crop and len(crop) == 4 and crop[2] > crop[0] and crop[3] > crop[1] else (0, 0, 1000, 1000)
    )
    x1, y1, x2, y2 = (max(bbox[0], cx1), max(bbox[1], cy1), min(bbox[2], cx2), min(bbox[3], cy2))
    if x2 <= x1 or y2 <= y1:
        return None
    w, h = cx2 - cx1, cy2 - cy1
    return (100 * (x1 - cx1) / w, 100 * (y1 - cy1) / h, 100 * (x2 - x1) / w, 100 * (y2 - y1) / h)


def snapshot_jpeg(conn: Connection, snap_id: int) -> bytes | None:
    return conn.execute(select(snapshots.c.jpeg).where(snapshots.c.id == snap_id)).scalar()


def list_alerts(conn: Connection, *, status: str = "", group: str = "", limit: int = 200) -> list[dict[str, Any]]:
    origin_hh = aliased(households)
    responder_dev = aliased(devices)
    responder_hh = aliased(households)
    query = (
        select(
            alerts,
            origin_hh.c.name.label("origin_name"),
            responder_hh.c.id.label("responder_hh"),
            responder_hh.c.name.label("responder_name"),
        )
        .outerjoin(origin_hh, origin_hh.c.id == alerts.c.household_id)
        .outerjoin(responder_dev, responder_dev.c.id == alerts.c.first_ack_device)
        .outerjoin(responder_hh, responder_hh.c.id == responder_dev.c.household_id)
        .order_by((alerts.c.status == "open").desc(), alerts.c.raised_ms.desc())
        .limit(max(1, min(limit, 1000)))
    )
    if status in ("open", "closed"):
        query = query.where(alerts.c.status == status)
    if group:
        query = query.where(alerts.c.group_id == group)
    return [dict(r) for r in conn.execute(query).mappings()]


def list_alarms(
    conn: Connection, *, include_cleared_since_ms: int | None = None, limit: int = 300
) -> list[dict[str, Any]]:
    cond: ColumnElement[bool] = alarms.c.cleared_ms.is_(None)
    if include_cleared_since_ms is not None:
        cond = or_(cond, alarms.c.cleared_ms >= include_cleared_since_ms)
    query = (
        select(
            alarms,
            console_alarm_acks.c.user_name.label("ack_user"),
            console_alarm_acks.c.ack_ms,
            households.c.name.label("hh_name"),
            villages.c.name.label("village"),
        )
        .outerjoin(console_alarm_acks, console_alarm_acks.c.alarm_id == alarms.c.id)
        .outerjoin(devices, devices.c.id == alarms.c.device_id)
        .outerjoin(households, households.c.id == devices.c.household_id)
        .outerjoin(villages, villages.c.id == households.c.village_id)
        .where(cond)
        # Unacknowledged open alarms first: that is the operator's to-do list.
        .order_by(
            alarms.c.cleared_ms.is_not(None), console_alarm_acks.c.alarm_id.is_not(None), alarms.c.raised_ms.desc()
        )
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def ack_alarm(conn: Connection, alarm_id: int, user: str, now_ms: int) -> bool:
    """Record that ``user`` has seen the alarm; False if it does not exist or was acknowledged already."""
    if conn.execute(select(alarms.c.id).where(alarms.c.id == alarm_id)).first() is None:
        return False
    if (
        conn.execute(select(console_alarm_acks.c.alarm_id).where(console_alarm_acks.c.alarm_id == alarm_id)).first()
        is not None
    ):
        return False
    conn.execute(console_alarm_acks.insert().values(alarm_id=alarm_id, user_name=user, ack_ms=now_ms))
    return True


def list_groups(conn: Connection) -> list[dict[str, Any]]:
    leader = aliased(households)
    members = (
        select(
            households.c.group_id,
            func.count(func.distinct(households.c.id)).label("households"),
            func.count(devices.c.id).filter(devices.c.status == "active").label("devices"),
            func.count(devices.c.id).filter(devices.c.status == "active", devices.c.online.is_(True)).label("online"),
        )
        .outerjoin(devices, devices.c.household_id == households.c.id)
        .group_by(households.c.group_id)
        .subquery()
    )
    query = (
        select(
            groups.c.id,
            groups.c.name,
            villages.c.name.label("village"),
            leader.c.id.label("leader_id"),
            leader.c.name.label("leader_name"),
            members.c.households,
            members.c.devices,
            members.c.online,
        )
        .outerjoin(villages, villages.c.id == groups.c.village_id)
        .outerjoin(leader, leader.c.id == groups.c.leader_household)
        .outerjoin(members, members.c.group_id == groups.c.id)
        .order_by(groups.c.id)
    )
    responses: dict[str, list[int]] = {}
    counts: dict[str, int] = {}
    for r in conn.execute(select(alerts.c.group_id, alerts.c.response_ms)):
        counts[r.group_id] = counts.get(r.group_id, 0) + 1
        if r.response_ms is not None:
            responses.setdefault(r.group_id, []).append(r.response_ms)
    out = []
    for group in conn.execute(query).mappings():
        g = dict(group)
        times = responses.get(g["id"], [])
        g.update(
            alert_count=counts.get(g["id"], 0),
            answered=len(times),
            median_response_ms=int(statistics.median(times)) if times else None,
        )
        for k in ("households", "devices", "online"):
            g[k] = int(g[k] or 0)
        out.append(g)
    return out


def group_members(conn: Connection, group_id: str) -> list[dict[str, Any]]:
    query = (
        select(
            households.c.id.label("household_id"),
            households.c.name,
            households.c.phone,
            households.c.armed_from,
            households.c.armed_to,
            devices.c.id.label("device_id"),
            devices.c.status,
            devices.c.online,
            devices.c.armed,
            devices.c.last_seen_ms,
        )
        .outerjoin(devices, devices.c.household_id == households.c.id)
        .where(households.c.group_id == group_id)
        .order_by(households.c.id, devices.c.id)
    )
    # The household's phone, masked (138****5678): the group API is open to viewers.
    return [{**r, "phone": mask(r["phone"])} for r in conn.execute(query).mappings()]

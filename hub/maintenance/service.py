"""Maintenance windows: while one is on, the health rules raise no offline,
flapping, tamper or heartbeat alarm for the devices it covers.

A window covers a device, a village (every device of its households) or a
联防组, from ``from_ms`` until ``until_ms`` or until ended early. Nothing here
keeps a timer: whether a device is quiet is asked of the table at the moment
an alarm would be raised, so a window that expires (or is ended) simply stops
answering, and the offline rule — which derives its graces from stored state —
raises the alarm of a device still away on its next check.

Called by the console (the maintenance page), by the bulk-actions code, and
by ``hub.health`` (``quiet_devices`` once per batch that would raise).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, or_, select, update

from hub.db.schema import devices, groups, households, villages
from hub.maintenance.tables import maintenance_windows as mw
from protocol.ids import is_device_id, parse_group_id

SCOPES = ("device", "village", "group")
# Longer is almost surely a typo (a year for a month); a long job gets a new window.
MAX_WINDOW_MS = 31 * 86_400_000


@dataclass(frozen=True)
class Window:
    id: int
    scope: str
    target: str
    from_ms: int
    until_ms: int
    reason: str
    created_by: str
    ended_ms: int | None

    def active_at(self, now_ms: int) -> bool:
        return self.from_ms <= now_ms < self.until_ms and (self.ended_ms is None or now_ms < self.ended_ms)

    @property
    def effective_until_ms(self) -> int:
        """When it stops (or stopped) covering: ended early, or its end."""
        return self.until_ms if self.ended_ms is None else min(self.until_ms, self.ended_ms)


def _window(r: Row[Any]) -> Window:
    return Window(
        int(r.id),
        str(r.scope),
        str(r.target),
        int(r.from_ms),
        int(r.until_ms),
        str(r.reason),
        str(r.created_by),
        None if r.ended_ms is None else int(r.ended_ms),
    )


def _check_target(conn: Connection, scope: str, target: str) -> str:
    """The target in its stored form; ValueError naming ``target`` if it names nothing."""
    if scope == "device":
        if not is_device_id(target):
            raise ValueError("target: a 20-digit device id")
        found = conn.execute(select(devices.c.id).where(devices.c.id == target)).first()
    elif scope == "village":
        if not target.isdigit():
            raise ValueError("target: a village id (a number)")
        target = str(int(target))
        found = conn.execute(select(villages.c.id).where(villages.c.id == int(target))).first()
    else:
        try:
            target = parse_group_id(target)
        except ValueError:
            raise ValueError("target: a group id of [A-Za-z0-9_-], 1-32 chars") from None
        found = conn.execute(select(groups.c.id).where(groups.c.id == target)).first()
    if found is None:
        # A window on a mistyped target would silence nothing and look as if it did.
        raise ValueError(f"target: no {scope} {target!r} in the registry")
    return target


def add_window(engine: Engine, scope: str, target: str, from_ms: int, until_ms: int, reason: str, user: str) -> Window:
    """Record a window; ValueError naming the field (scope, target, from_ms, until_ms, reason, user)."""
    if scope not in SCOPES:
        raise ValueError(f"scope: one of {', '.join(SCOPES)}")
    target = str(target).strip()
    if not isinstance(from_ms, int) or from_ms < 0:
        raise ValueError("from_ms: milliseconds since the epoch")
    if not isinstance(until_ms, int) or until_ms <= from_ms:
        raise ValueError("until_ms: after from_ms")
    if until_ms - from_ms > MAX_WINDOW_MS:
        raise ValueError(f"until_ms: at most {MAX_WINDOW_MS // 86_400_000} days after from_ms")
    reason = reason.strip()
    if not reason or len(reason) > 200:
        raise ValueError("reason: 1-200 characters (the console shows why the alarms are quiet)")
    if not user or len(user) > 64:
        raise ValueError("user: 1-64 characters")
    with engine.begin() as conn:
        target = _check_target(conn, scope, target)
        new_id = conn.execute(
            mw.insert()
            .values(
                scope=scope,
                target=target,
                from_ms=from_ms,
                until_ms=until_ms,
                reason=reason,
                created_by=user,
                created_ms=int(time.time() * 1000),
            )
            .returning(mw.c.id)
        ).scalar_one()
    return Window(int(new_id), scope, target, from_ms, until_ms, reason, user, None)


def end_window(engine: Engine, window_id: int, user: str, now_ms: int) -> bool:
    """End a window now; False if there is none by that id or it is over already.

    One conditional UPDATE, so two operators (or a bulk action) ending it at
    once end it once. A window that has not begun yet is ended too (cancelled).
    """
    with engine.begin() as conn:
        done = conn.execute(
            update(mw)
            .where(mw.c.id == window_id, mw.c.ended_ms.is_(None), mw.c.until_ms > now_ms)
            .values(ended_ms=now_ms, ended_by=user[:64])
        ).rowcount
    return bool(done)


def _active(now_ms: int) -> Any:
    return and_(mw.c.from_ms <= now_ms, mw.c.until_ms > now_ms, or_(mw.c.ended_ms.is_(None), mw.c.ended_ms > now_ms))


def active_windows(engine_or_conn: Engine | Connection, now_ms: int) -> list[Window]:
    """Windows on at ``now_ms``, the one ending first first."""
    query = select(mw).where(_active(now_ms)).order_by(mw.c.until_ms, mw.c.id)
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            return [_window(r) for r in conn.execute(query)]
    return [_window(r) for r in engine_or_conn.execute(query)]


def recent_windows(conn: Connection, since_ms: int, limit: int = 200) -> list[Window]:
    """Every window still to come or on, and those over since ``since_ms``: the console's list."""
    query = (
        select(mw)
        .where(or_(mw.c.until_ms >= since_ms, mw.c.ended_ms >= since_ms))
        .order_by(mw.c.from_ms.desc(), mw.c.id.desc())
        .limit(limit)
    )
    return [w for w in (_window(r) for r in conn.execute(query)) if w.effective_until_ms >= since_ms]


def _pick(found: Window | None, w: Window) -> Window:
    # Of several windows over one device, the one lasting longest says when it is loud again.
    return w if found is None or w.effective_until_ms > found.effective_until_ms else found


def in_maintenance(conn: Connection, device_id: str, now_ms: int) -> Window | None:
    """The window covering ``device_id`` at ``now_ms`` (the longest-lasting of several), or None."""
    place = conn.execute(
        select(households.c.village_id, households.c.group_id)
        .select_from(devices.join(households, households.c.id == devices.c.household_id))
        .where(devices.c.id == device_id)
    ).first()
    targets = [and_(mw.c.scope == "device", mw.c.target == device_id)]
    if place is not None:
        targets.append(and_(mw.c.scope == "village", mw.c.target == str(place.village_id)))
        targets.append(and_(mw.c.scope == "group", mw.c.target == str(place.group_id)))
    found: Window | None = None
    for r in conn.execute(select(mw).where(_active(now_ms), or_(*targets))):
        found = _pick(found, _window(r))
    return found


def quiet_devices(conn: Connection, now_ms: int, device_ids: set[str] | None = None) -> dict[str, Window]:
    """Every device covered at ``now_ms`` (of ``device_ids`` when given) → its window.

    Two queries whatever the number of devices: the windows on now (a handful),
    then the devices of their targets. The health rules call it once per batch
    that would raise an alarm, not once per device.
    """
    windows = active_windows(conn, now_ms)
    if not windows:
        return {}
    by_scope: dict[str, dict[str, list[Window]]] = {s: {} for s in SCOPES}
    for w in windows:
        by_scope[w.scope].setdefault(w.target, []).append(w)
    village_ids = [int(v) for v in by_scope["village"]]
    conds = []
    if by_scope["device"]:
        conds.append(devices.c.id.in_(sorted(by_scope["device"])))
    if village_ids:
        conds.append(households.c.village_id.in_(village_ids))
    if by_scope["group"]:
        conds.append(households.c.group_id.in_(sorted(by_scope["group"])))
    rows = conn.execute(
        select(devices.c.id, households.c.village_id, households.c.group_id)
        .select_from(devices.join(households, households.c.id == devices.c.household_id))
        .where(or_(*conds))
    )
    out: dict[str, Window] = {}
    for r in rows:
        if device_ids is not None and r.id not in device_ids:
            continue
        found: Window | None = None
        for w in (
            by_scope["device"].get(r.id, [])
            + by_scope["village"].get(str(r.village_id), [])
            + by_scope["group"].get(str(r.group_id), [])
        ):
            found = _pick(found, w)
        if found is not None:
            out[r.id] = found
    return out

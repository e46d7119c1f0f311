"""Online/offline: from retained state messages and the will, from any message
a device sends, and from missed heartbeats (``missed`` × the device's interval).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select, update

from hub.core.inbound import Accepted
from hub.db.schema import devices
from protocol.messages import Health, State
from protocol.topics import Channel


@dataclass(frozen=True, slots=True)
class Sighting:
    device_id: str
    received_ms: int
    online: bool  # False only for an explicit offline state (the will, or a clean shutdown)
    interval_s: int | None = None
    agent_version: str | None = None
    armed: bool | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    device_id: str
    online: bool
    at_ms: int
    armed_flag: bool | None  # what the device last reported, None if never


class SightingFilter:
    """Which of a batch's messages are worth a presence write.

    A state or a heartbeat always is (it says online/offline, interval,
    version, armed). An event or ack only says "this device is alive":
    writing last_seen for every one of them would be a row update per message
    during a burst, and a few seconds of precision is plenty against an
    offline timeout of 3 × 60 s.
    """

    SEEN_REFRESH_S = 5.0

    def __init__(self) -> None:
        self._seen_written: dict[str, float] = {}  # device → when this worker last wrote it as online (monotonic s)

    def sightings(self, accepted: Sequence[Accepted]) -> list[Sighting]:
        now = time.monotonic()
        out = []
        for it in accepted:
            dev = it.device.device_id
            informative = it.channel in (Channel.STATE, Channel.HEALTH)
            if not informative and now - self._seen_written.get(dev, float("-inf")) < self.SEEN_REFRESH_S:
                continue
            sighting = _sighting(it)
            if sighting.online:
                self._seen_written[dev] = now
            else:
                self._seen_written.pop(dev, None)
            out.append(sighting)
        return out

    def forget(self) -> None:
        """The transaction rolled back, and with it what this remembers writing."""
        self._seen_written.clear()


def _sighting(it: Accepted) -> Sighting:
    msg = it.message
    if isinstance(msg, State):
        return Sighting(it.device.device_id, it.received_ms, msg.state == "online", msg.interval_s, msg.agent_version)
    if isinstance(msg, Health):
        return Sighting(it.device.device_id, it.received_ms, True, msg.interval_s, msg.agent_version, msg.armed)
    return Sighting(it.device.device_id, it.received_ms, True)


def apply_sightings(conn: Connection, sightings: Sequence[Sighting]) -> list[Transition]:
    if not sightings:
        return []
    ids = sorted({s.device_id for s in sightings})
    current = {
        r.id: r
        for r in conn.execute(select(devices.c.id, devices.c.online, devices.c.armed).where(devices.c.id.in_(ids)))
    }
    final: dict[str, dict[str, Any]] = {}
    for s in sightings:
        row = current.get(s.device_id)
        if row is None:
            continue
        values = final.setdefault(s.device_id, {})
        values["online"] = s.online
        if s.online:
            values["last_seen_ms"] = max(s.received_ms, values.get("last_seen_ms", 0))
        values["_at"] = s.received_ms
        if s.interval_s is not None:
            values["health_interval_s"] = s.interval_s
        if s.agent_version is not None:
            values["agent_version"] = s.agent_version
        if s.armed is not None:
            values["armed"] = s.armed
    transitions: list[Transition] = []
    by_shape: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for dev, values in final.items():
        at = values.pop("_at")
        row = current[dev]
        if bool(row.online) != values["online"]:
            values["state_changed_ms"] = at
            armed = values.get("armed", row.armed)
            transitions.append(Transition(dev, values["online"], at, None if armed is None else bool(armed)))
        shape = tuple(sorted(values))
        by_shape.setdefault(shape, []).append({"b_id": dev, **{f"b_{k}": v for k, v in values.items()}})
    for shape, rows in by_shape.items():
        stmt = update(devices).where(devices.c.id == bindparam("b_id")).values({k: bindparam(f"b_{k}") for k in shape})
        conn.execute(stmt, rows)
    return transitions


def expire_silent(conn: Connection, now_ms: int, missed: int) -> list[Transition]:
    """Mark offline every online device silent for ``missed`` heartbeat intervals."""
    overdue = and_(
        devices.c.online.is_(True),
        devices.c.status == "active",
        devices.c.last_seen_ms.is_not(None),
        devices.c.last_seen_ms + devices.c.health_interval_s * (1000 * missed) < now_ms,
    )
    rows = conn.execute(select(devices.c.id, devices.c.last_seen_ms, devices.c.armed).where(overdue)).all()
    out: list[Transition] = []
    for r in rows:
        # Conditional on last_seen so a heartbeat that a worker stored meanwhile wins.
        result = conn.execute(
            update(devices)
            .where(devices.c.id == r.id, devices.c.online.is_(True), devices.c.last_seen_ms == r.last_seen_ms)
            .values(online=False, state_changed_ms=now_ms)
        )
        if result.rowcount:
            out.append(Transition(r.id, False, now_ms, None if r.armed is None else bool(r.armed)))
    return out

"""Which devices a bulk action reaches: township, village, group, agent version, health state.

The place criteria are bound parameters in SQL; version and health are read
from each device's heartbeat JSON, compared in Python because JSON access
differs per backend and the whole county is ~3,300 rows. Only active devices
are ever selected: a revoked one can receive no command.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, select

from hub.db.places import devices_with_place
from hub.db.schema import devices, households, townships, villages
from hub.db.schema_ops import alarms, health_latest

HEALTH = ("online", "offline", "camera_error", "alarm", "armed", "disarmed")
THROTTLED_NOW = 0x1 | 0x4


@dataclass(frozen=True, slots=True)
class Selection:
    township: str = ""  # township code
    village: int | None = None
    group: str = ""
    version: str = ""  # the agent version the device reports, exactly
    health: str = ""  # one of HEALTH

    def empty(self) -> bool:
        """No criterion at all: the whole county, which a bulk action refuses (one slip, every house)."""
        return not (self.township or self.village is not None or self.group or self.version or self.health)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in ("", None)}

    def describe(self) -> str:
        """Short, for the audit row (its detail holds 200 characters)."""
        return " ".join(f"{k}={v}" for k, v in self.to_json().items())

    @classmethod
    def parse(cls, params: dict[str, Any]) -> Selection:
        """From request parameters (strings) or a stored job; unknown values become no criterion."""
        village_raw = str(params.get("village") or "").strip()
        health = str(params.get("health") or "")
        return cls(
            township=str(params.get("township") or "")[:2].strip(),
            village=int(village_raw) if village_raw.isdigit() and len(village_raw) < 12 else None,
            group=str(params.get("group") or "")[:32].strip(),
            version=str(params.get("version") or "")[:32].strip(),
            health=health if health in HEALTH else "",
        )


def _matches_health(health: str, row: dict[str, Any], open_alarm: bool) -> bool:
    if health == "online":
        return bool(row["online"])
    if health == "offline":
        return not row["online"]
    if health == "camera_error":
        return bool(row["cam"] == "error")
    if health == "alarm":
        return open_alarm
    if health == "armed":
        return bool(row["armed"])
    if health == "disarmed":
        return not row["armed"]
    return True


def select_devices(conn: Connection, sel: Selection) -> list[dict[str, Any]]:
    """The selected active devices, by id, with where they are and how they are."""
    query = (
        select(
            devices.c.id,
            devices.c.online,
            devices.c.armed,
            devices.c.agent_version,
            households.c.id.label("household_id"),
            households.c.name.label("household"),
            households.c.group_id,
            villages.c.id.label("village_id"),
            villages.c.name.label("village"),
            townships.c.code.label("township_code"),
            townships.c.name.label("township"),
            health_latest.c.data,
        )
        .select_from(devices_with_place())
        .where(devices.c.status == "active")
        .order_by(devices.c.id)
    )
    if sel.township:
        query = query.where(townships.c.code == sel.township)
    if sel.village is not None:
        query = query.where(villages.c.id == sel.village)
    if sel.group:
        query = query.where(households.c.group_id == sel.group)
    alarmed: set[str] = set()
    if sel.health == "alarm":
        alarmed = set(conn.execute(select(alarms.c.device_id).where(alarms.c.cleared_ms.is_(None))).scalars())
    out = []
    for r in conn.execute(query):
        h = r.data or {}
        row = {
            "id": r.id,
            "household_id": r.household_id,
            "household": r.household or r.household_id,
            "group": r.group_id,
            "village_id": r.village_id,
            "village": r.village,
            "township_code": r.township_code,
            "township": r.township,
            "online": bool(r.online),
            "armed": bool(r.armed),
            "version": r.agent_version or h.get("ver"),
            "cam": h.get("cam"),
        }
        if sel.version and row["version"] != sel.version:
            continue
        if not _matches_health(sel.health, row, r.id in alarmed):
            continue
        out.append(row)
    return out


def choices(conn: Connection) -> dict[str, list[tuple[Any, str]]]:
    """What the selection form offers: townships, villages, groups, the versions seen."""
    towns = conn.execute(select(townships.c.code, townships.c.name).order_by(townships.c.code)).all()
    vil = conn.execute(
        select(villages.c.id, villages.c.name, townships.c.name.label("town"))
        .join(townships, townships.c.code == villages.c.township_code)
        .order_by(townships.c.code, villages.c.name)
    ).all()
    grp = conn.execute(select(households.c.group_id).distinct().order_by(households.c.group_id)).scalars().all()
    # The version a device reports lives in its heartbeat (``ver``); the registry's column is often empty.
    vers = {v for v in conn.execute(select(devices.c.agent_version)).scalars() if v}
    vers |= {str(d["ver"]) for d in conn.execute(select(health_latest.c.data)).scalars() if d and d.get("ver")}
    return {
        "townships": [(t.code, f"{t.code} {t.name}") for t in towns],
        "villages": [(v.id, f"{v.town} · {v.name}") for v in vil],
        "groups": [(g, g) for g in grp if g],
        "versions": [(v, v) for v in sorted(vers)],
    }

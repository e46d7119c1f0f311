"""The registry: townships, villages, 联防组 groups, households and devices.

Provisioning writes it (one device at a time or a county CSV at once); the
hub's ingest reads it to decide whose messages to accept. All writes are
idempotent upserts so a re-run of a batch neither duplicates nor fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, and_, select, update

from hub.db.schema import devices, groups, households, townships, villages
from protocol.ids import parse_device_id, parse_group_id


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    device_id: str
    household_id: str
    group_id: str
    status: str
    cert_fingerprint: str | None
    online: bool
    last_seen_ms: int | None


class Registry:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- writes (idempotent) -------------------------------------------------

    def ensure_township(self, conn: Connection, code: str, name: str) -> None:
        row = conn.execute(select(townships.c.name).where(townships.c.code == code)).first()
        if row is None:
            conn.execute(townships.insert().values(code=code, name=name))
        elif row.name != name:
            conn.execute(update(townships).where(townships.c.code == code).values(name=name))

    def ensure_village(self, conn: Connection, township_code: str, name: str) -> int:
        cond = and_(villages.c.township_code == township_code, villages.c.name == name)
        vid = conn.execute(select(villages.c.id).where(cond)).scalar()
        if vid is None:
            inserted = conn.execute(villages.insert().values(township_code=township_code, name=name))
            assert inserted.inserted_primary_key is not None  # an INSERT always has one
            vid = inserted.inserted_primary_key[0]
        return int(vid)

    def ensure_group(self, conn: Connection, group_id: str, village_id: int | None, name: str | None = None) -> None:
        parse_group_id(group_id)
        if conn.execute(select(groups.c.id).where(groups.c.id == group_id)).first() is None:
            conn.execute(groups.insert().values(id=group_id, village_id=village_id, name=name))

    def set_group_leader(self, conn: Connection, group_id: str, household_id: str) -> None:
        conn.execute(update(groups).where(groups.c.id == group_id).values(leader_household=household_id))

    def ensure_household(
        self,
        conn: Connection,
        household_id: str,
        *,
        village_id: int,
        group_id: str,
        name: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
        phone: str | None = None,
        armed_from: str | None = None,
        armed_to: str | None = None,
    ) -> None:
        values: dict[str, object] = {
            "village_id": village_id,
            "group_id": group_id,
            "name": name,
            "lat": lat,
            "lon": lon,
            "phone": phone,
        }
        if armed_from is not None:
            values["armed_from"] = armed_from
        if armed_to is not None:
            values["armed_to"] = armed_to
        exists = conn.execute(select(households.c.id).where(households.c.id == household_id)).first()
        if exists is None:
            conn.execute(households.insert().values(id=household_id, created_ms=now_ms(), **values))
        else:
            conn.execute(update(households).where(households.c.id == household_id).values(**values))

    def add_device(
        self,
        conn: Connection,
        device_id: str,
        household_id: str,
        *,
        cert_fingerprint: str | None = None,
        cert_serial: str | None = None,
    ) -> None:
        parse_device_id(device_id)
        exists = conn.execute(select(devices.c.id).where(devices.c.id == device_id)).first()
        if exists is None:
            conn.execute(
                devices.insert().values(
                    id=device_id,
                    household_id=household_id,
                    cert_fingerprint=cert_fingerprint,
                    cert_serial=cert_serial,
                    status="active",
                    online=False,
                    created_ms=now_ms(),
                )
            )
        else:
            conn.execute(
                update(devices)
                .where(devices.c.id == device_id)
                .values(household_id=household_id, cert_fingerprint=cert_fingerprint, cert_serial=cert_serial)
            )

    def revoke_device(self, device_id: str, reason: str = "revoked") -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(devices)
                .where(devices.c.id == device_id, devices.c.status == "active")
                .values(status="revoked", revoked_ms=now_ms(), revoked_reason=reason[:200], online=False)
            )
        return result.rowcount > 0

    # -- reads ---------------------------------------------------------------

    def device_ids(self, conn: Connection | None = None) -> set[str]:
        if conn is None:
            with self.engine.connect() as c:
                return set(c.execute(select(devices.c.id)).scalars())
        return set(conn.execute(select(devices.c.id)).scalars())

    def active_device_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(devices.c.id).where(devices.c.status == "active")).scalars()
            return set(rows)

    def get_device(self, device_id: str) -> DeviceRecord | None:
        query = (
            select(devices, households.c.group_id)
            .join(households, households.c.id == devices.c.household_id)
            .where(devices.c.id == device_id)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return DeviceRecord(
            device_id=row.id,
            household_id=row.household_id,
            group_id=row.group_id,
            status=row.status,
            cert_fingerprint=row.cert_fingerprint,
            online=bool(row.online),
            last_seen_ms=row.last_seen_ms,
        )

    def group_members(self, group_id: str) -> list[tuple[str, str]]:
        """(device_id, household_id) of every active device in a group."""
        query = (
            select(devices.c.id, devices.c.household_id)
            .join(households, households.c.id == devices.c.household_id)
            .where(households.c.group_id == group_id, devices.c.status == "active")
            .order_by(devices.c.id)
        )
        with self.engine.connect() as conn:
            return [(r.id, r.household_id) for r in conn.execute(query)]

    def acl_rows(self) -> list[tuple[str, str]]:
        """(device_id, group_id) of every active device, for the broker ACL."""
        query = (
            select(devices.c.id, households.c.group_id)
            .join(households, households.c.id == devices.c.household_id)
            .where(devices.c.status == "active")
            .order_by(devices.c.id)
        )
        with self.engine.connect() as conn:
            return [(r.id, r.group_id) for r in conn.execute(query)]

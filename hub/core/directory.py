"""An in-memory copy of the registry for the message path.

3,312 devices sending a heartbeat a minute plus events must not cost a
database round trip per message, so ingest reads devices, households and
groups from here and reloads them every ``ttl_s``. An unknown device forces an
early reload (rate-limited), so a device provisioned a moment ago is accepted
without waiting out the TTL, while a flood from an unregistered ID cannot turn
into a flood of registry queries.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import Engine, select

from hub.db.schema import devices, households


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    device_id: str
    household_id: str
    group_id: str
    active: bool
    interval_s: int


@dataclass(frozen=True, slots=True)
class HouseholdInfo:
    household_id: str
    name: str | None
    group_id: str
    armed_from: str
    armed_to: str


class Directory:
    def __init__(self, engine: Engine, ttl_s: float = 30.0, miss_reload_s: float = 2.0) -> None:
        self.engine = engine
        self.ttl_s = ttl_s
        self.miss_reload_s = miss_reload_s
        self._lock = threading.Lock()
        self._devices: dict[str, DeviceInfo] = {}
        self._households: dict[str, HouseholdInfo] = {}
        self._loaded_at = float("-inf")

    def reload(self) -> None:
        with self.engine.connect() as conn:
            hh_rows = conn.execute(
                select(
                    households.c.id,
                    households.c.name,
                    households.c.group_id,
                    households.c.armed_from,
                    households.c.armed_to,
                )
            ).all()
            dev_rows = conn.execute(
                select(devices.c.id, devices.c.household_id, devices.c.status, devices.c.health_interval_s)
            ).all()
        hhs = {r.id: HouseholdInfo(r.id, r.name, r.group_id, r.armed_from, r.armed_to) for r in hh_rows}
        devs: dict[str, DeviceInfo] = {}
        for r in dev_rows:
            hh = hhs.get(r.household_id)
            if hh is None:
                continue
            devs[r.id] = DeviceInfo(r.id, r.household_id, hh.group_id, r.status == "active", r.health_interval_s or 60)
        with self._lock:
            self._devices, self._households = devs, hhs
            self._loaded_at = time.monotonic()

    def _fresh(self) -> None:
        if time.monotonic() - self._loaded_at > self.ttl_s:
            self.reload()

    def device(self, device_id: str) -> DeviceInfo | None:
        self._fresh()
        info = self._devices.get(device_id)
        if info is None and time.monotonic() - self._loaded_at > self.miss_reload_s:
            self.reload()
            info = self._devices.get(device_id)
        return info

    def household(self, household_id: str) -> HouseholdInfo | None:
        self._fresh()
        return self._households.get(household_id)

    def all_devices(self) -> list[DeviceInfo]:
        self._fresh()
        return list(self._devices.values())

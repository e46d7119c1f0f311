"""Rollout tests' kit: a fleet in two villages, what ingest would store when a
device reports its update state, a fake clock and a sender that records."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, update

from hub.db import upgrade
from hub.db.dialect import upsert_insert
from hub.db.schema import devices
from hub.db.schema_ops import health_latest
from hub.registry import Registry
from protocol.ids import make_device_id
from protocol.messages import Health

OLD, NEW = "0.2.0", "0.3.0"
TZ = ZoneInfo("Asia/Shanghai")


def at(text: str) -> int:
    """'2026-03-01 02:00' county time → epoch ms."""
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=TZ).timestamp() * 1000)


class Clock:
    def __init__(self, start_ms: int) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


class Recorder:
    """``hub.rollout.engine.Sender`` that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.refuse: set[str] = set()

    def send(self, device_id: str, op: str, args: dict[str, Any] | None) -> str:
        if device_id in self.refuse:
            raise ValueError(f"device {device_id} refused for the test")
        self.sent.append((device_id, op, dict(args or {})))
        return f"c{len(self.sent)}"

    def devices(self) -> list[str]:
        return [d for d, _, _ in self.sent]


def make_villages(engine: Engine, per_village: int = 10) -> dict[str, list[str]]:
    """Two villages of 泉山镇 (和平村, 红星村), ``per_village`` households with one device
    each, all online on OLD. Returns village name → device ids."""
    upgrade(engine)
    reg = Registry(engine)
    out: dict[str, list[str]] = {}
    serial = 1
    with engine.begin() as conn:
        reg.ensure_township(conn, "01", "泉山镇")
        for v, village in enumerate(("和平村", "红星村")):
            vid = reg.ensure_village(conn, "01", village)
            gid = f"g01{v:02d}"
            reg.ensure_group(conn, gid, vid, f"{village}一组")
            out[village] = []
            for h in range(per_village):
                hh = f"HH{v}{h:03d}"
                reg.ensure_household(conn, hh, village_id=vid, group_id=gid, name=f"户{v}-{h}")
                dev = str(make_device_id(1, serial))
                serial += 1
                reg.add_device(conn, dev, hh)
                out[village].append(dev)
        conn.execute(update(devices).values(online=True, agent_version=OLD, state_changed_ms=0, last_seen_ms=0))
    return out


def report(engine: Engine, device_id: str, now_ms: int, *, ver: str = OLD, **update_keys: Any) -> None:
    """What ingest stores for a heartbeat with ``ver`` and the update keys
    (update_state=…, update_version=…, update_error=…, update_rollout=…)."""
    h = Health(time_ms=now_ms, agent_version=ver, **update_keys)
    with engine.begin() as conn:
        ins = upsert_insert(conn, health_latest).values(
            device_id=device_id, received_ms=now_ms, device_time_ms=now_ms, data=h.to_wire()
        )
        conn.execute(
            ins.on_conflict_do_update(
                index_elements=["device_id"],
                set_={"data": ins.excluded.data, "received_ms": now_ms, "device_time_ms": now_ms},
            )
        )
        conn.execute(update(devices).where(devices.c.id == device_id).values(agent_version=ver, last_seen_ms=now_ms))


def presence(engine: Engine, device_id: str, online: bool, now_ms: int) -> None:
    """A device's will or its coming back, as hub.health.presence writes it."""
    with engine.begin() as conn:
        conn.execute(update(devices).where(devices.c.id == device_id).values(online=online, state_changed_ms=now_ms))

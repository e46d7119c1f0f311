"""The hub's database in tests: a small registered fleet, and row counts."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Table, func, select

from hub.db import upgrade
from hub.db.schema_ops import events
from hub.registry import Registry
from protocol.ids import make_device_id


def device(township: int, serial: int) -> str:
    return str(make_device_id(township, serial))


def not_armed_now() -> dict[str, str]:
    """Armed hours (Asia/Shanghai) that exclude the next few hours, for a test whose
    person events must not alert: with the county's default 22:00-06:00 its outcome
    would depend on the hour the suite happens to run at."""
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = local + timedelta(hours=8), local + timedelta(hours=9)
    return {"armed_from": start.strftime("%H:%M"), "armed_to": end.strftime("%H:%M")}


def armed_now() -> dict[str, str]:
    """Armed hours (Asia/Shanghai) around now, for a test whose person events must alert
    whatever the hour the suite runs at."""
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = local - timedelta(hours=1), local + timedelta(hours=2)
    return {"armed_from": start.strftime("%H:%M"), "armed_to": end.strftime("%H:%M")}


def make_fleet(
    engine: Engine, groups: int = 2, per_group: int = 3, *, armed_from: str = "22:00", armed_to: str = "06:00"
) -> dict[str, list[str]]:
    """Register ``groups`` groups of ``per_group`` households with one device each.
    Returns group id → device ids (in household order)."""
    upgrade(engine)
    reg = Registry(engine)
    out: dict[str, list[str]] = {}
    serial = 1
    with engine.begin() as conn:
        reg.ensure_township(conn, "01", "泉山镇")
        vid = reg.ensure_village(conn, "01", "和平村")
        for g in range(groups):
            gid = f"g{g:03d}"
            reg.ensure_group(conn, gid, vid, f"第{g}组")
            out[gid] = []
            for h in range(per_group):
                hh = f"HH{g:03d}{h:02d}"
                reg.ensure_household(
                    conn, hh, village_id=vid, group_id=gid, name=f"户{g}-{h}", armed_from=armed_from, armed_to=armed_to
                )
                dev = device(1, serial)
                serial += 1
                reg.add_device(conn, dev, hh)
                out[gid].append(dev)
            reg.set_group_leader(conn, gid, f"HH{g:03d}00")
    return out


def count_rows(engine: Engine, table: Table = events) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

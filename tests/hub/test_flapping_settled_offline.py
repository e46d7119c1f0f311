"""A flapping device that stops flapping by going offline for good (the failing power
supply that made it flap finally gives out) keeps its flapping alarm: it got a recovery
notice ("presence unchanged for 15 min") and left the operators' list while still
away, and, its household disarmed, no other alarm stood for it (attack review). One
that settles online recovers, with its notice, as before."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, update

from hub.config import HealthConfig
from hub.db import make_engine
from hub.db.schema import devices
from hub.db.schema_ops import alarms
from hub.health.flapping import FLAPPING, FlapRules
from hub.health.tables import alarm_notices
from tests.support.hub_db import make_fleet

CONFIG = HealthConfig(flap_count=3, flap_window_s=600.0, flap_stable_s=900.0)
T0 = 1_800_000_000_000


@pytest.fixture
def rig(db_url: str) -> Iterator[tuple[Engine, list[str]]]:
    engine = make_engine(db_url)
    devs = make_fleet(engine, groups=1, per_group=2)["g000"]
    with engine.begin() as conn:
        for d in devs:
            conn.execute(alarms.insert().values(device_id=d, kind=FLAPPING, detail="went offline 3 times",
                                                raised_ms=T0))  # fmt: skip
        conn.execute(update(devices).where(devices.c.id == devs[0]).values(online=False, state_changed_ms=T0))
        conn.execute(update(devices).where(devices.c.id == devs[1]).values(online=True, state_changed_ms=T0))
    yield engine, devs
    engine.dispose()


def test_a_device_settled_offline_keeps_its_flapping_alarm(rig: tuple[Engine, list[str]]) -> None:
    engine, (gone, back) = rig
    with engine.begin() as conn:
        FlapRules(CONFIG).check(conn, T0 + 901_000, [])
    with engine.connect() as conn:
        still_open = set(
            conn.execute(
                select(alarms.c.device_id).where(alarms.c.kind == FLAPPING, alarms.c.cleared_ms.is_(None))
            ).scalars()
        )
        noticed = set(conn.execute(select(alarm_notices.c.device_id)).scalars())
    assert still_open == {gone}
    assert noticed == {back}

"""A 治安户长 heading two villages is two contacts (a contact serves one village) with one
device. Their press on that device stops a chain that notified either of them: it was
matched only to the first contact the device query returned, so an alert of the second
village went on escalating past the person who had answered it (attack review). A device
no notice went to still stops nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from hub.contacts.csv_import import import_csv
from hub.db import make_engine
from hub.db.schema_ops import alerts
from hub.escalation.engine import on_device_ack
from hub.escalation.tables import ACKED, RUNNING, escalation_notices, escalations
from hub.registry import Registry
from tests.support.hub_db import make_fleet

T0 = 1_800_000_000_000


@pytest.fixture
def rig(db_url: str) -> Iterator[tuple[Engine, str, str]]:
    engine = make_engine(db_url)
    fleet = make_fleet(engine, groups=3, per_group=1)
    head, stranger = fleet["g001"][0], fleet["g002"][0]
    with engine.begin() as conn:
        Registry(engine).ensure_village(conn, "01", "新村")
    csv = (
        "id,name,role,phone,township,village,device_id\n"
        f"sh2,陈户长,security_head,,泉山镇,和平村,{head}\n"
        f"sh3,陈户长,security_head,,泉山镇,新村,{head}\n"
    )
    assert not import_csv(engine, csv).errors
    with engine.begin() as conn:
        conn.execute(
            alerts.insert().values(id="al1", kind="panic", origin_device=fleet["g000"][0], household_id="HH00000",
                                   group_id="g000", raised_ms=T0, status="open")
        )  # fmt: skip
        conn.execute(
            escalations.insert().values(alert_id="al1", group_id="g000", kind="panic", started_ms=T0, step=2,
                                        next_ms=T0 + 60_000, status=RUNNING)
        )  # fmt: skip
        conn.execute(
            escalation_notices.insert().values(alert_id="al1", step=2, channel="mqtt", target="sh3", at_ms=T0,
                                               result="queued")
        )  # fmt: skip
    yield engine, head, stranger
    engine.dispose()


def test_the_press_of_a_head_of_two_villages_stops_the_chain(rig: tuple[Engine, str, str]) -> None:
    engine, head, _ = rig
    with engine.begin() as conn:
        assert on_device_ack(conn, "al1", head, True, T0 + 30_000)
    with engine.connect() as conn:
        chain = conn.execute(select(escalations).where(escalations.c.alert_id == "al1")).one()
    assert (chain.status, chain.acked_by, chain.ack_channel) == (ACKED, "sh3", "mqtt")


def test_a_device_never_sent_the_alert_stops_nothing(rig: tuple[Engine, str, str]) -> None:
    engine, _, stranger = rig
    with engine.begin() as conn:
        assert not on_device_ack(conn, "al1", stranger, True, T0 + 30_000)
    with engine.connect() as conn:
        assert conn.execute(select(escalations.c.status)).scalar_one() == RUNNING

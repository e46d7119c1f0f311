"""A notice still in the outbox when its chain is acknowledged is not sent: with the
gateway down for an hour, every queued "unanswered panic" notice of a chain a
neighbour had answered in its first minute went out when the gateway came back,
calling the township and the county desk out to a closed alert (attack review).
A notice of a chain still running, or unanswered to the end, is sent."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from hub.config_escalation import RoleWebhook
from hub.contacts.csv_import import import_csv
from hub.core.items import EscalationItem
from hub.db import make_engine
from hub.db.schema_ops import alerts
from hub.escalation.sinks import DeviceAlertSink, RoleWebhookSink
from hub.escalation.tables import ACKED, EXHAUSTED, RUNNING, escalations
from hub.forward.sink import SinkError
from tests.support.hub_db import make_fleet

T0 = 1_800_000_000_000


@dataclass
class Publisher:
    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def publish(self, items: Sequence[tuple[str, bytes, int, Any]], timeout: float = 5.0) -> list[int]:
        self.sent += [(t, p) for t, p, _q, _tr in items]
        return [0 for _ in items]

    def is_connected(self) -> bool:
        return True


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    head_device = make_fleet(engine, groups=2, per_group=1)["g001"][0]  # a 治安户长 of another group
    csv = (
        "id,name,role,phone,township,village,device_id\n"
        "td1,赵值班,township_duty,13722223333,泉山镇,,\n"
        f"sh2,陈户长,security_head,,,和平村,{head_device}\n"
    )
    assert not import_csv(engine, csv).errors
    yield engine
    engine.dispose()


def chain(engine: Engine, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            escalations.insert().values(
                alert_id="al1", group_id="g000", kind="panic", started_ms=T0, step=3, status=status
            )
        )


def item(channel: str, contact: str, role: str) -> EscalationItem:
    return EscalationItem(
        alert_id="al1", step=3, channel=channel, role=role, contact_id=contact, kind="panic",
        origin="62062101011198000001", household_id="HH00000", group_id="g000", raised_ms=T0, text="户0-0",
    )  # fmt: skip


def webhook(engine: Engine) -> tuple[RoleWebhookSink, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    hook = RoleWebhook(url="http://gw.test/", secret="s" * 24)
    sink = RoleWebhookSink(engine, "township_duty", hook, b"s" * 24, transport=httpx.MockTransport(gateway))
    return sink, seen


def test_a_queued_webhook_notice_of_an_acknowledged_chain_is_not_sent(engine: Engine) -> None:
    chain(engine, ACKED)
    sink, seen = webhook(engine)
    with pytest.raises(SinkError) as exc:
        sink.send(item("webhook", "td1", "township_duty"))
    assert exc.value.permanent and "acknowledged" in str(exc.value)
    assert seen == []


def test_a_queued_device_notice_of_an_acknowledged_chain_is_not_sent(engine: Engine) -> None:
    chain(engine, ACKED)
    publisher = Publisher()
    with pytest.raises(SinkError) as exc:
        DeviceAlertSink(engine, publisher).send(item("mqtt", "sh2", "security_head"))
    assert exc.value.permanent and "acknowledged" in str(exc.value)
    assert publisher.sent == []


@pytest.mark.parametrize("status", [RUNNING, EXHAUSTED])
def test_a_notice_of_an_unanswered_chain_is_sent(engine: Engine, status: str) -> None:
    chain(engine, status)
    sink, seen = webhook(engine)
    sink.send(item("webhook", "td1", "township_duty"))
    assert len(seen) == 1
    publisher = Publisher()
    DeviceAlertSink(engine, publisher).send(item("mqtt", "sh2", "security_head"))
    assert len(publisher.sent) == 1


def test_a_notice_of_an_alert_a_neighbour_just_acknowledged_is_not_sent(engine: Engine) -> None:
    # The neighbour's ack closed the alert; the escalation job has not yet stopped the chain.
    chain(engine, RUNNING)
    with engine.begin() as conn:
        conn.execute(
            alerts.insert().values(id="al1", kind="panic", origin_device="62062101011198000001",
                                   household_id="HH00000", group_id="g000", raised_ms=T0, status="closed",
                                   close_reason="ack", closed_ms=T0 + 5_000)
        )  # fmt: skip
    sink, seen = webhook(engine)
    with pytest.raises(SinkError) as exc:
        sink.send(item("webhook", "td1", "township_duty"))
    assert exc.value.permanent and "acknowledged" in str(exc.value) and seen == []

"""The notification channels, behind one port.

A channel is told of one step of one chain, with the contacts that step
selected, inside the transaction that takes the step; it returns what it did
for the step's record. Nothing here sends anything itself: the buzzers were
woken by the alert's own publish (hub/alerts/engine.py, re-sent by the health
watcher until the broker confirms it), the console reads the chain's state
live, and the webhook and MQTT notices are outbox items the forwarder delivers
(retries, dead letters, nothing lost across a restart).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Row

from hub.core.items import EscalationItem

Enqueue = Callable[[Connection, Sequence[EscalationItem]], dict[str, list[Any]]]


@dataclass(frozen=True, slots=True)
class Chain:
    """What a channel needs to know of the alert being escalated."""

    alert_id: str
    kind: str
    origin: str
    household_id: str
    household_name: str | None
    group_id: str
    raised_ms: int
    published_ms: int | None


@dataclass(frozen=True, slots=True)
class Notice:
    channel: str
    target: str  # contact id, group id, or "console"
    result: str  # published | unconfirmed | shown | queued | no_channel
    sink: str | None = None
    item_key: str | None = None


class NotificationChannel(Protocol):
    name: str

    def notify(self, conn: Connection, chain: Chain, step: int, contacts: Sequence[Row[Any]]) -> list[Notice]:
        """Notify (or queue notices for) ``contacts`` at ``step``; the notices for the record."""
        ...


class BuzzerChannel:
    """Step 1: the household buzzers of the group. The alert engine published it;
    the record says whether the broker confirmed it yet."""

    name = "buzzer"

    def notify(self, conn: Connection, chain: Chain, step: int, contacts: Sequence[Row[Any]]) -> list[Notice]:
        if step != 1:
            return []
        result = "published" if chain.published_ms is not None else "unconfirmed"
        return [Notice(self.name, chain.group_id, result)]


class ConsoleChannel:
    """Every step is shown live in the console (/api/escalation/live, with a sound)."""

    name = "console"

    def notify(self, conn: Connection, chain: Chain, step: int, contacts: Sequence[Row[Any]]) -> list[Notice]:
        return [Notice(self.name, "console", "shown")]


class _Queued:
    name = ""

    def __init__(self, enqueue: Enqueue) -> None:
        self.enqueue = enqueue

    def wants(self, contact: Row[Any]) -> bool:
        raise NotImplementedError

    def notify(self, conn: Connection, chain: Chain, step: int, contacts: Sequence[Row[Any]]) -> list[Notice]:
        items = [
            EscalationItem(
                alert_id=chain.alert_id,
                step=step,
                channel=self.name,
                role=c.role,
                contact_id=c.id,
                kind=chain.kind,
                origin=chain.origin,
                household_id=chain.household_id,
                group_id=chain.group_id,
                raised_ms=chain.raised_ms,
                text=chain.household_name,
            )
            for c in contacts
            if self.wants(c)
        ]
        queued = self.enqueue(conn, items)
        sink_of = {item.key: sink for sink, got in queued.items() for item in got}
        return [
            Notice(self.name, item.contact_id, "queued", sink_of[item.key], item.key)
            for item in items
            if item.key in sink_of
        ]


class WebhookChannel(_Queued):
    """The role's signed webhook (the county SMS/voice gateway), for contacts with a phone."""

    name = "webhook"

    def __init__(self, enqueue: Enqueue, roles: frozenset[str]) -> None:
        super().__init__(enqueue)
        self.roles = roles

    def wants(self, contact: Row[Any]) -> bool:
        return contact.role in self.roles and contact.phone is not None


class MqttChannel(_Queued):
    """An ``alert`` command to a 治安户长's own device."""

    name = "mqtt"

    def wants(self, contact: Row[Any]) -> bool:
        return contact.device_id is not None


def unreached(contacts: Sequence[Row[Any]], notices: Sequence[Notice]) -> list[Notice]:
    """A contact no channel could reach is on the record too: an operator must see the gap."""
    reached = {n.target for n in notices}
    return [Notice("none", c.id, "no_channel") for c in contacts if c.id not in reached]

"""The forwarder sinks of the escalation notices: a signed webhook per role, and MQTT.

They are ``hub.forward.sink.Sink``s run by a ``hub.forward.Forwarder`` of
their own (same outbox tables, same retries and dead letters, sink names
``esc-<role>`` and ``esc-mqtt``), so a gateway that is down holds up only its
role's notices, never the platform's events.

The phone is read from the contacts table at send time and goes only into the
request body: not into the outbox, not into an error (a gateway's error text
is stripped of digit runs before it can reach a log line).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, select

from hub.commands import CommandError, Publisher, send_command
from hub.config_escalation import RoleWebhook
from hub.contacts import store as contacts
from hub.core.items import EscalationItem, ForwardItem
from hub.db.schema_ops import alerts
from hub.escalation.tables import ACKED, escalations
from hub.forward.clock import ForwardClock, SystemClock
from hub.forward.sink import SinkError
from hub.forward.webhook import IDEMPOTENCY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from protocol.errors import ProtocolError

SCHEMA = "xl.escalation.v1"
_DIGITS = re.compile(r"\d{5,}")


def redact(text: str) -> str:
    """An error text safe to log: a gateway may echo the number it could not dial."""
    return _DIGITS.sub("#", text)


def check_unanswered(conn: Connection, item: EscalationItem) -> None:
    """Refuse (for good) a notice whose chain was acknowledged while it waited in the outbox:
    a gateway back after an hour would otherwise call the township and the county desk out
    to an alert a neighbour answered in its first minute."""
    row = conn.execute(
        select(escalations.c.status, escalations.c.ack_channel, escalations.c.ack_step, alerts.c.close_reason)
        .select_from(escalations.outerjoin(alerts, alerts.c.id == escalations.c.alert_id))
        .where(escalations.c.alert_id == item.alert_id)
    ).first()
    if row is None:
        return
    if row.status == ACKED:
        raise SinkError(
            f"not sent: alert {item.alert_id} was acknowledged ({row.ack_channel}, step {row.ack_step})",
            permanent=True,
        )
    if row.close_reason == "ack":  # a neighbour's, which the job's next pass records on the chain
        raise SinkError(f"not sent: alert {item.alert_id} was acknowledged (device)", permanent=True)


def notice_body(item: EscalationItem, contact: Any) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "id": item.key,
        "alert_id": item.alert_id,
        "step": item.step,
        "role": item.role,
        "contact": {"id": contact.id, "name": contact.name, "phone": contact.phone},
        "kind": item.kind,
        "origin": item.origin,
        "household_id": item.household_id,
        "household_name": item.text,
        "group_id": item.group_id,
        "raised_ms": item.raised_ms,
        # The gateway acknowledges by POSTing {"alert_id", "contact_id"} to the console's
        # /api/escalation/ack, signed the same way with the same secret.
        "ack_path": "/api/escalation/ack",
    }


class RoleWebhookSink:
    def __init__(
        self,
        engine: Engine,
        role: str,
        hook: RoleWebhook,
        secret: bytes,
        clock: ForwardClock | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("escalation webhook secret must be at least 16 bytes")
        self.name = f"esc-{role}"
        self.role = role
        self.engine = engine
        self.url = hook.url
        self._secret = secret
        self.clock: ForwardClock = clock or SystemClock()
        self._http = httpx.Client(timeout=hook.timeout_s, verify=hook.verify_tls, transport=transport)

    def accepts(self, item: ForwardItem) -> bool:
        return isinstance(item, EscalationItem) and item.channel == "webhook" and item.role == self.role

    def send(self, item: ForwardItem) -> None:
        assert isinstance(item, EscalationItem)
        with self.engine.connect() as conn:
            check_unanswered(conn, item)
            contact = contacts.by_id(conn, item.contact_id)
        if contact is None or not contact.active or not contact.phone:
            # Disabled or changed since the step: nobody to dial, and retrying cannot change that.
            raise SinkError(f"contact {item.contact_id} is disabled or has no phone", permanent=True)
        body = json.dumps(notice_body(item, contact), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(self.clock.now_ms() // 1000)
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
            IDEMPOTENCY_HEADER: item.key,
        }
        try:
            resp = self._http.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SinkError(f"escalation webhook unreachable: {type(exc).__name__}") from None
        code = resp.status_code
        if 200 <= code < 300:
            return
        retry = code >= 500 or code in (401, 403, 408, 425, 429)
        raise SinkError(f"escalation webhook HTTP {code}: {redact(resp.text[:200])}", permanent=not retry)

    def tick(self, now_ms: int) -> None:
        return None

    def close(self) -> None:
        self._http.close()


class DeviceAlertSink:
    """An ``alert`` command (protocol/README.md) on the 治安户长's device's cmd topic.

    Delivered when the broker took it (QoS 1, the device's persistent session
    holds it while the device is away); the device's own ack of the command
    lands in ``commands``, and a person's acknowledgement comes back as an
    ordinary alert ack."""

    name = "esc-mqtt"

    def __init__(self, engine: Engine, publisher: Publisher) -> None:
        self.engine = engine
        self.publisher = publisher

    def accepts(self, item: ForwardItem) -> bool:
        return isinstance(item, EscalationItem) and item.channel == "mqtt"

    def send(self, item: ForwardItem) -> None:
        assert isinstance(item, EscalationItem)
        with self.engine.connect() as conn:
            check_unanswered(conn, item)
            contact = contacts.by_id(conn, item.contact_id)
        if contact is None or not contact.active or not contact.device_id:
            raise SinkError(f"contact {item.contact_id} is disabled or has no device", permanent=True)
        if not self.publisher.is_connected():
            raise SinkError("not connected to the broker")
        args: dict[str, Any] = {"id": item.alert_id, "k": item.kind, "hh": item.household_id[:64], "s": item.step}
        if item.text:
            args["msg"] = item.text[:64]
        try:
            send_command(self.engine, self.publisher, contact.device_id, "alert", args)
        except ProtocolError as exc:
            raise SinkError(f"alert command refused: {exc}", permanent=True) from None
        except CommandError as exc:
            permanent = "not queued" not in str(exc)  # unregistered or revoked: final; a full queue: retry
            raise SinkError(str(exc), permanent=permanent) from None

    def tick(self, now_ms: int) -> None:
        return None

    def close(self) -> None:
        return None

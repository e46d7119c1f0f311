"""Commands to devices (arm, disarm, schedule, snapshot, …), recorded so that
the device's ack (``of="cmd"``, which ingest hands to ``record_result``) can be
matched to them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from sqlalchemy import Connection, Engine, select, update

from hub.db.dialect import upsert_insert
from hub.db.schema import devices
from hub.db.schema_ops import commands
from protocol.codec import encode
from protocol.messages import Ack, Command
from protocol.qos import DELIVERY
from protocol.topics import Channel, cmd_topic


class CommandError(ValueError):
    pass


class Publisher(Protocol):
    """What sends the hub's own MQTT messages: the ingest transport, or a plain paho client."""

    def publish(self, items: Sequence[tuple[str, bytes, int, Any]], timeout: float = 5.0) -> list[int]:
        """Queue (topic, payload, qos, track) items; paho's result code for each."""
        ...

    def is_connected(self) -> bool: ...


class PahoPublisher:
    """``Publisher`` over a paho client this process runs itself (``xl-hub console`` alone)."""

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client

    def publish(self, items: Sequence[tuple[str, bytes, int, Any]], timeout: float = 5.0) -> list[int]:
        return [int(self.client.publish(topic, payload, qos=qos).rc) for topic, payload, qos, _track in items]

    def is_connected(self) -> bool:
        return self.client.is_connected()


def send_command(
    engine: Engine,
    client: Publisher,
    device_id: str,
    op: str,
    args: dict[str, Any] | None = None,
    expires_ms: int | None = None,
) -> str:
    """Validate, record and publish a command; returns its id.

    ``expires_ms``: a device back after that (hub time, its clock synced) answers ``expired``
    instead of acting: a stale arm from a bulk job must not change a household's arming hours later.

    Recorded before publishing, so an ack can never arrive for a command the
    database does not know yet.
    """
    command = Command(
        command_id=uuid.uuid4().hex,
        op=op,
        args=dict(args or {}),
        time_ms=int(time.time() * 1000),
        expires_ms=expires_ms,
    )  # raises ProtocolError on a bad op/args
    payload = encode(command)
    with engine.begin() as conn:
        status = conn.execute(select(devices.c.status).where(devices.c.id == device_id)).scalar()
        if status is None:
            raise CommandError(f"device {device_id} is not registered")
        if status != "active":
            raise CommandError(f"device {device_id} is {status}")
        conn.execute(
            commands.insert().values(
                id=command.command_id, device_id=device_id, op=op, args=command.args or None, sent_ms=command.time_ms
            )
        )
    [rc] = client.publish([(cmd_topic(device_id), payload, DELIVERY[Channel.CMD].qos, None)])
    if rc != mqtt.MQTT_ERR_SUCCESS:
        raise CommandError(f"command not queued for publishing (rc={rc})")
    return command.command_id


def record_result(conn: Connection, device_id: str, ack: Ack, received_ms: int) -> None:
    """Store a device's result for one of its commands (ingest, in the batch's transaction)."""
    values = {"ack_ms": received_ms, "ok": ack.ok, "error": ack.error}
    done = conn.execute(
        update(commands).where(commands.c.id == ack.ref_id, commands.c.device_id == device_id).values(**values)
    ).rowcount
    if not done:
        # A result for a command this database never sent (another hub, or an
        # operator's tool): kept, so it is visible rather than lost.
        ins = upsert_insert(conn, commands).on_conflict_do_nothing(index_elements=["id"])
        conn.execute(ins.values(id=ack.ref_id, device_id=device_id, **values))

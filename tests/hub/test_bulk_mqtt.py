"""A bulk arm against simulated devices on a real Mosquitto (SQLite and PostgreSQL).

Four devices are online: paho clients that receive the `arm` command and answer
through hub.commands.record_result, as ingest does with a device's ack. Two are
offline: one never connected; one has a persistent session (clean_start=False,
a session expiry) and is away. Neither answers, and after the job's compressed
expiry both are `expired`. The one with a session then comes back: the broker
delivers the stale arm it kept (QoS 1), which is the documented limitation (the
agent does not check the command's `t`), and its late ack leaves the ended job as it was.
"""

from __future__ import annotations

import json
import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hub.bulk import service
from hub.bulk.select import Selection
from hub.commands import PahoPublisher, record_result
from hub.config import MqttConfig
from hub.console.server import MqttPublisher
from hub.db import make_engine
from hub.mqtt.client import make_client
from protocol.codec import decode_command
from protocol.messages import Ack
from protocol.topics import cmd_topic
from tests.support.broker import run_broker
from tests.support.console import County, now_ms, seed_county
from tests.support.wait import wait_for

EXPIRY_S = 3


class Device:
    """A simulated camera: subscribes to its command topic; ``answer`` acks like an agent would."""

    def __init__(self, county: County, port: int, dev: str, *, answer: bool, persistent: bool = False) -> None:
        self.county, self.port, self.dev, self.answer = county, port, dev, answer
        self.persistent = persistent
        self.got: queue.Queue[dict[str, Any]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{dev}", protocol=mqtt.MQTTv5)
        self.client.on_message = self._message
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: self._subscribed.set()

    def connect(self, *, subscribe: bool = True) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 300 if self.persistent else 0
        self.client.connect("127.0.0.1", self.port, clean_start=not self.persistent, properties=props)
        self.client.loop_start()
        wait_for(self.client.is_connected, 5, f"{self.dev} connected")
        if subscribe:
            self._subscribed.clear()
            self.client.subscribe(cmd_topic(self.dev), qos=1)
            assert self._subscribed.wait(5)

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        cmd = decode_command(bytes(msg.payload))
        self.got.put(json.loads(msg.payload))
        if self.answer:
            with self.county.engine.begin() as conn:
                ack = Ack(of="cmd", ref_id=cmd.command_id, ok=True, time_ms=now_ms())
                record_result(conn, self.dev, ack, now_ms())


@pytest.fixture
def rig(db_url: str) -> Iterator[tuple[County, int, MqttPublisher]]:
    engine = make_engine(db_url)
    county = seed_county(engine)
    with run_broker() as broker:
        client = make_client(MqttConfig(host="127.0.0.1", port=broker.port), f"hub-{uuid.uuid4().hex[:6]}")
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        wait_for(client.is_connected, 5, "hub MQTT connection")
        yield county, broker.port, MqttPublisher(engine, PahoPublisher(client))
        client.disconnect()
        client.loop_stop()
    engine.dispose()


def test_a_bulk_arm_reaches_the_online_and_expires_the_offline(rig: tuple[County, int, MqttPublisher]) -> None:
    county, port, publisher = rig
    targets = sorted(county.devices["g0101-01"] + county.devices["g0101-02"])  # township 01: six devices
    online = [Device(county, port, d, answer=True) for d in targets[:4]]
    never, away = targets[4], Device(county, port, targets[5], answer=True, persistent=True)
    for d in online:
        d.connect()
    away.connect()
    away.disconnect()  # its session (and subscription) stays with the broker

    job = service.create_job(county.engine, "arm", Selection(township="01"), "op1", expiry_s=EXPIRY_S)
    assert job.total == 6
    service.run_job(county.engine, job.id, publisher.send)

    def counts() -> dict[str, int]:
        with county.engine.connect() as conn:
            return service.progress(conn, job, now_ms())

    wait_for(lambda: counts()["ok"] == 4, 10, "four online devices acked")
    assert counts() == {"pending": 0, "sent": 2, "ok": 4, "failed": 0, "expired": 0}
    for d in online:
        assert d.got.get(timeout=2)["op"] == "arm"
    assert not service.settle(county.engine, job.id)  # two still out, before the expiry
    wait_for(lambda: service.settle(county.engine, job.id), EXPIRY_S + 5, "the job ended at its expiry")
    final = service.get_job(county.engine, job.id)
    assert final is not None and final.counts == {"pending": 0, "sent": 0, "ok": 4, "failed": 0, "expired": 2}
    with county.engine.connect() as conn:
        expired = [r["device_id"] for r in service.results(conn, final, now_ms(), status="expired")]
    assert expired == sorted([never, away.dev])

    # Back after the expiry: the broker hands over the arm it kept, stamped before the expiry.
    away.connect(subscribe=False)
    stale = away.got.get(timeout=5)
    assert stale["op"] == "arm" and stale["t"] < final.expires_ms
    with county.engine.connect() as conn:
        wait_for(lambda: _acked(county, away.dev), 5, "the late device's ack stored")
        assert [r["status"] for r in service.results(conn, final, now_ms()) if r["device_id"] == away.dev] == [
            "expired"
        ]
    away.disconnect()
    for d in online:
        d.disconnect()


def _acked(county: County, dev: str) -> bool:
    from sqlalchemy import select

    from hub.db.schema_ops import commands

    with county.engine.connect() as conn:
        return conn.execute(select(commands.c.ack_ms).where(commands.c.device_id == dev)).scalar() is not None

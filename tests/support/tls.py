"""TLS test kit: a throwaway county PKI, a Mosquitto TLS config for it, and a
hub-side test subscriber with its own certificate and a persistent session.

Used by the agent, hub and reliability tests, which all talk to a real
Mosquitto with client certificates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.link import LinkSettings
from provisioning import pki
from tests.support.broker import Broker

DEVICE = "62062101011198000123"
GROUP = "g0101-03"


@dataclass
class Pki:
    dir: Path
    ca: Path
    cert: Path
    key: Path
    hub_cert: Path
    hub_key: Path
    server_cert: Path
    server_key: Path


def make_pki(where: Path, device_id: str = DEVICE) -> Pki:
    where.mkdir(parents=True, exist_ok=True)
    ca = pki.CA.create("Test County CA")
    pki.write_public(where / "ca.crt", pki.cert_pem(ca.cert))
    paths: dict[str, tuple[Path, Path]] = {}
    for name, cn, server in (
        ("server", "broker", ["127.0.0.1", "localhost"]),
        ("device", device_id, None),
        ("hub", "hub", None),
    ):
        key = pki.new_key()
        cert = ca.issue(key.public_key(), cn, unit=name, days=365, server_names=server)
        pki.write_private(where / f"{name}.key", pki.key_pem(key))
        pki.write_public(where / f"{name}.crt", pki.cert_pem(cert))
        paths[name] = (where / f"{name}.crt", where / f"{name}.key")
    return Pki(where, where / "ca.crt", *paths["device"], *paths["hub"], *paths["server"])


def tls_config(p: Pki) -> str:
    # Persistence, so a subscriber's queued messages survive the outage tests' broker restart.
    return (
        "listener {port} 127.0.0.1\n"
        f"cafile {p.ca}\ncertfile {p.server_cert}\nkeyfile {p.server_key}\n"
        "require_certificate true\nuse_identity_as_username true\nuse_username_as_clientid true\n"
        "persistence true\npersistence_location {workdir}/\nautosave_interval 1\n"
    )


class Hub:
    """A test subscriber (the hub's side) with its own certificate and a persistent session."""

    def __init__(
        self, p: Pki, broker: Broker, topics: list[str], client_id: str = "hub", receipts: bool = True
    ) -> None:
        """``receipts``: answer every kept message that carries "q" with a receipt,
        as the real hub does after its commit (tests of the device side)."""
        self.messages: list[tuple[str, bytes]] = []
        self.receipts = receipts
        self._cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(p.ca), certfile=str(p.hub_cert), keyfile=str(p.hub_key))
        self.client.reconnect_delay_set(0.1, 0.5)
        self._topics = topics
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in self._topics])
        self.subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect("127.0.0.1", broker.port, keepalive=10, clean_start=False, properties=props)
        self.client.loop_start()
        # Until the SUBACK, a device's publish reaches no one (PUBACK 0x10) and is re-sent later, out
        # of order: a loaded machine made the link's ordering test fail that way.
        if not self.subscribed.wait(10):
            raise AssertionError(f"the test hub could not subscribe to {topics}")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if self.receipts:
            from protocol.codec import encode, seq_of
            from protocol.receipts import receipts_for
            from protocol.topics import parse_topic, receipt_topic

            topic = parse_topic(msg.topic)
            seq = seq_of(topic.channel, bytes(msg.payload))
            if seq is not None and topic.device is not None:
                self.client.publish(receipt_topic(topic.device), encode(receipts_for([seq])[0]), qos=1)
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def wait(self, done: Callable[[list[tuple[str, bytes]]], bool], timeout: float = 10.0, must: bool = True) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not done(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    if must:
                        raise AssertionError(f"timed out; got {len(self.messages)} messages: {self.messages[-3:]}")
                    return False
                self._cond.wait(left)
        return True

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def link_settings(p: Pki, port: int, host: str = "127.0.0.1", **kw: Any) -> LinkSettings:
    """The test device's link to a broker (or a proxy in front of one) on ``port``; ``kw`` may
    override anything, another identity's files included."""
    base: dict[str, Any] = dict(device_id=DEVICE, group=GROUP, host=host, port=port, ca=p.ca, cert=p.cert, key=p.key)
    return LinkSettings(**(base | kw))

"""Small real MQTT 5 clients (paho 2.x): ``connect`` over TLS for the broker and
security tests, and ``Peer``, a plain client standing in for a device or an observer."""

from __future__ import annotations

import queue
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


@dataclass
class Client:
    client: mqtt.Client
    connected: threading.Event = field(default_factory=threading.Event)
    disconnected: threading.Event = field(default_factory=threading.Event)
    refused: str | None = None
    session_present: bool = False
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def topics(self) -> list[str]:
        with self.lock:
            return [t for t, _ in self.messages]

    def wait_topic(self, topic: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if topic in self.topics():
                return True
            time.sleep(0.02)
        return False

    def subscribe(self, topic: str, qos: int = 1) -> int:
        """Subscribe and return the SUBACK reason code (0x87: refused by the broker)."""
        done = threading.Event()
        codes: list[int] = []

        def on_subscribe(_c, _u, _mid, reasons, _p):  # type: ignore[no-untyped-def]
            codes.extend(int(r.value) for r in reasons)
            done.set()

        self.client.on_subscribe = on_subscribe
        self.client.subscribe(topic, qos)
        assert done.wait(5), f"no SUBACK for {topic}"
        return codes[0]

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(5)

    def close(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def connect(
    port: int,
    *,
    ca: Path,
    cert: Path | None,
    key: Path | None,
    client_id: str = "",
    timeout: float = 5.0,
    tls: bool = True,
    session_expiry: int = 0,
) -> Client:
    """Connect and wait until CONNACK success, a refusal or a dropped connection.
    With ``session_expiry`` the client resumes its session (clean start off), as a device does."""
    raw = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c = Client(raw)
    if tls:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        if cert is not None and key is not None:
            ctx.load_cert_chain(str(cert), str(key))
        raw.tls_set_context(ctx)

    def on_connect(_c, _u, flags, reason, _p):  # type: ignore[no-untyped-def]
        c.session_present = bool(flags.session_present)
        if reason.is_failure:
            c.refused = str(reason)
            c.disconnected.set()
        else:
            c.connected.set()

    def on_disconnect(_c, _u, _f, _reason, _p):  # type: ignore[no-untyped-def]
        c.disconnected.set()

    def on_message(_c, _u, msg):  # type: ignore[no-untyped-def]
        with c.lock:
            c.messages.append((msg.topic, msg.payload))

    raw.on_connect = on_connect
    raw.on_disconnect = on_disconnect
    raw.on_connect_fail = lambda *_a: c.disconnected.set()
    raw.on_message = on_message
    raw.reconnect_delay_set(30, 60)  # a test client must not silently reconnect
    try:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry
        raw.connect("127.0.0.1", port, keepalive=30, clean_start=session_expiry == 0, properties=props)
    except (OSError, ssl.SSLError) as exc:
        c.refused = f"{type(exc).__name__}: {exc}"
        c.disconnected.set()
        return c
    raw.loop_start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not c.connected.is_set() and not c.disconnected.is_set():
        time.sleep(0.02)
    if not c.connected.is_set():
        c.refused = c.refused or "no CONNACK"
        raw.loop_stop()
    return c


def can_connect(port: int, **kwargs: object) -> bool:
    c = connect(port, **kwargs)  # type: ignore[arg-type]
    ok = c.connected.is_set()
    if ok:
        # A client cert rejected after a TLS 1.3 handshake shows up as an immediate drop.
        time.sleep(0.3)
        ok = not c.disconnected.is_set()
        c.close()
    return ok


class Peer:
    """A real paho client standing in for a device or a test observer."""

    def __init__(self, port: int, client_id: str | None = None, *, will: tuple[str, bytes] | None = None) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or uuid.uuid4().hex, protocol=mqtt.MQTTv5
        )
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.received: queue.Queue[tuple[str, bytes, float]] = queue.Queue()
        self._subscribed = threading.Event()
        self.client.on_message = lambda _c, _u, m: self.received.put((m.topic, m.payload, time.monotonic()))
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self._subscribed.clear()
        self.client.subscribe(topic, qos)
        assert self._subscribed.wait(5), f"no SUBACK for {topic}"

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(5)

    def get(self, timeout: float = 5.0) -> tuple[str, bytes, float]:
        return self.received.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

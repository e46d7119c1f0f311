"""The MQTT link: TLS with the device certificate, the outbox drained with QoS 1.

One thread owns the paho client: it connects, calls ``loop()``, publishes from
the outbox and reconnects. Keeping every paho call on that thread means a
PUBACK can never arrive before its mid→seq entry exists, and nothing else in
the agent blocks on the network.

Each connection attempt builds a fresh paho client. paho keeps its session in
memory only; after a reconnect it would re-send its own copies of in-flight
messages while the outbox re-sends them too. With a fresh client the outbox is
the only source of truth (a message is deleted only on its PUBACK), and the
broker-side session (``clean_start=False`` + session expiry) still holds the
subscriptions and queues commands and alerts while the device is away.

Reconnect delay is exponential backoff with full jitter, our own loop rather
than paho's fixed ``reconnect_delay_set``: delay = uniform(0, min(cap,
base·2^n)), so after a county-wide outage 3,312 devices spread out instead of
reconnecting in the same second.
"""

from __future__ import annotations

import collections
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.outbox import Outbox
from protocol.codec import encode
from protocol.messages import State
from protocol.qos import DELIVERY
from protocol.topics import Channel, alert_topic, cmd_topic, state_topic

log = logging.getLogger(__name__)

STABLE_S = 30.0  # a connection that lasted this long resets the backoff
CONNACK_TIMEOUT_S = 30.0
# PUBACK reason 0x10: the broker took the message but nobody subscribes to it,
# so it went nowhere. The hub is the only reader of uplink topics; this happens
# when its subscriptions are gone, e.g. Mosquitto restarted (it does not restore
# shared subscriptions from persistence) and the hub has not reconnected yet.
NO_MATCHING_SUBSCRIBERS = 16
UNHEARD_RETRY_S = (0.5, 30.0)  # re-send such a message after this, doubling up to the cap


@dataclass(frozen=True, slots=True)
class LinkSettings:
    device_id: str
    group: str
    host: str
    port: int
    ca: Path
    cert: Path
    key: Path
    keepalive: int = 60
    max_inflight: int = 10
    session_expiry: int = 86_400
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 300.0
    agent_version: str | None = None
    boot: int | None = None
    health_interval_s: int | None = None


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^attempt)]."""
    return rng.uniform(0.0, min(cap, base * (2 ** min(attempt, 32))))


class Link:
    def __init__(
        self,
        settings: LinkSettings,
        outbox: Outbox,
        on_message: Callable[[str, bytes], None] | None = None,
        now_ms: Callable[[], int] | None = None,
        on_status: Callable[[bool], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self._on_message = on_message
        self._on_status = on_status
        self._now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq
        self._acked: list[int] = []
        self._refused: set[int] = set()  # seqs the broker refused; retried on the next connection only
        self._unheard: dict[int, float] = {}  # seq -> monotonic time to re-send (nobody was subscribed)
        self._unheard_delay = UNHEARD_RETRY_S[0]
        self._volatile: collections.deque[tuple[str, bytes, int, bool]] = collections.deque(maxlen=8)
        self.connected = False
        self.attempts = 0  # consecutive failed connection attempts
        self.connects = 0
        self.last_error: str | None = None
        self.delays: list[float] = []  # recent backoff delays, for health and tests

    # -- public ----------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="xl-link", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say ``offline`` ourselves (a clean disconnect suppresses the will), then stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def publish_volatile(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Health and the like: sent if connected soon, otherwise dropped (never stored)."""
        if not self.connected:
            return False
        self._volatile.append((topic, payload, qos, retain))
        return True

    # -- the link thread -------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self._session()
            except Exception as exc:  # a bug or a TLS/socket surprise must not end the link
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                log.warning("mqtt link: %s", self.last_error)
            self._set_connected(False)
            if self._stop.is_set():
                break
            if time.monotonic() - began >= STABLE_S and self.connects:
                self.attempts = 0
            delay = backoff_delay(
                self.attempts, self.settings.backoff_base_s, self.settings.backoff_cap_s, self._rng
            )
            self.attempts += 1
            self.delays = [*self.delays[-19:], delay]
            self._stop.wait(delay)

    def _new_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.device_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        client.username_pw_set(s.device_id)
        client.tls_set(
            ca_certs=str(s.ca),
            certfile=str(s.cert),
            keyfile=str(s.key),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.max_inflight_messages_set(s.max_inflight)
        client.max_queued_messages_set(0)
        offline = DELIVERY[Channel.STATE]
        client.will_set(
            state_topic(s.device_id), encode(State(state="offline")), qos=offline.qos, retain=True
        )
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        return client

    def _session(self) -> None:
        s = self.settings
        client = self._client = self._new_client()
        self._inflight.clear()
        self._acked.clear()
        self._refused.clear()
        self._unheard.clear()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = s.session_expiry
        client.connect(s.host, s.port, keepalive=s.keepalive, clean_start=False, properties=props)
        connack_by = time.monotonic() + CONNACK_TIMEOUT_S
        try:
            while not self._stop.is_set():
                if not self.connected and time.monotonic() > connack_by:
                    self.last_error = "no CONNACK from the broker"
                    return
                rc = client.loop(timeout=0.1)
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    self.last_error = self.last_error or f"loop: {mqtt.error_string(rc)}"
                    return
                if self.connected:
                    self._pump(client)
            if self.connected:
                self._say_offline(client)
        finally:
            self._client = None
            try:
                client.disconnect()
                client.loop(timeout=0.1)
            except Exception as exc:  # the socket may already be gone
                log.debug("disconnect: %s", exc)

    def _pump(self, client: mqtt.Client) -> None:
        if self._acked:
            done, self._acked = self._acked, []
            self.outbox.delete(done)
        self.outbox.retry()
        while self._volatile:
            topic, payload, qos, retain = self._volatile.popleft()
            client.publish(topic, payload, qos=qos, retain=retain)
        if self._unheard:
            now = time.monotonic()
            for seq in [q for q, due in self._unheard.items() if due <= now]:
                del self._unheard[seq]
        room = self.settings.max_inflight - len(self._inflight)
        # The cheap in-memory count first: no query 10 times a second when idle.
        if room <= 0 or self.outbox.depth <= len(self._inflight) + len(self._refused) + len(self._unheard):
            return
        skip = [*self._inflight.values(), *self._refused, *self._unheard]
        for msg in self.outbox.pending(room, exclude=skip):
            info = client.publish(msg.topic, msg.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self.last_error = f"publish: {mqtt.error_string(info.rc)}"
                break
            self._inflight[info.mid] = msg.seq

    def _say_offline(self, client: mqtt.Client) -> None:
        info = client.publish(
            state_topic(self.settings.device_id),
            encode(State(state="offline", time_ms=self._now_ms())),
            qos=1,
            retain=True,
        )
        deadline = time.monotonic() + 2.0
        while not info.is_published() and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                break

    # -- paho callbacks (on the link thread, inside loop()) ---------------

    def _handle_connect(
        self, client: mqtt.Client, _ud: object, _flags: object, reason: object, _p: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"connect refused: {reason}"
            client.disconnect()
            return
        s = self.settings
        self.connects += 1
        self.last_error = None
        client.subscribe([(cmd_topic(s.device_id), 1), (alert_topic(s.group), 1)])
        online = State(
            state="online",
            time_ms=self._now_ms(),
            agent_version=s.agent_version,
            boot=s.boot,
            interval_s=s.health_interval_s,
        )
        client.publish(state_topic(s.device_id), encode(online), qos=1, retain=True)
        self._set_connected(True)

    def _handle_disconnect(
        self, _c: mqtt.Client, _ud: object, _flags: object, reason: object, _p: object
    ) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"disconnected: {reason}"
        self._set_connected(False)

    def _handle_publish(self, _c: mqtt.Client, _ud: object, mid: int, reason: object, _p: object) -> None:
        seq = self._inflight.pop(mid, None)
        if seq is None:
            return
        if getattr(reason, "is_failure", False):
            # The broker refused it (e.g. not authorised): keep it and say so; a
            # refused message is an operator problem, not something to drop silently.
            self.last_error = f"publish refused: {reason}"
            self._refused.add(seq)
            return
        if getattr(reason, "value", 0) == NO_MATCHING_SUBSCRIBERS:
            # Accepted but delivered to no one: deleting it now would lose it. Keep it
            # and send it again once the hub has had time to subscribe.
            self.last_error = "publish reached no subscriber (hub not subscribed)"
            if not self._unheard:  # a new round of refusals backs off further; one round shares a delay
                self._unheard_delay = min(UNHEARD_RETRY_S[1], self._unheard_delay * 2)
            self._unheard[seq] = time.monotonic() + self._unheard_delay
            return
        self._unheard_delay = UNHEARD_RETRY_S[0]
        self._acked.append(seq)

    def _handle_message(self, _c: mqtt.Client, _ud: object, message: mqtt.MQTTMessage) -> None:
        if self._on_message is None:
            return
        try:
            self._on_message(message.topic, bytes(message.payload))
        except Exception:  # a handler bug must not take the link down
            log.exception("handler for %s failed", message.topic)

    def _set_connected(self, value: bool) -> None:
        if self.connected != value:
            self.connected = value
            if self._on_status is not None:
                try:
                    self._on_status(value)
                except Exception:
                    log.exception("link status callback failed")

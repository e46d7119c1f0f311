"""The MQTT link: TLS with the device certificate, the outbox drained with QoS 1.

One thread owns the paho client: it connects, calls ``loop()``, publishes from
the outbox and reconnects. Keeping every paho call on that thread means a
PUBACK can never arrive before its mid→seq entry exists, and nothing else in
the agent blocks on the network.

Each connection attempt builds a fresh paho client. paho keeps its session in
memory only; after a reconnect it would re-send its own copies of in-flight
messages while the outbox re-sends them too. With a fresh client the outbox is
the only source of truth (a message is deleted only on the hub's end-to-end
receipt, agent/delivery.py), and the broker-side session (``clean_start=False``
+ session expiry) still holds the subscriptions and queues commands, alerts
and receipts while the device is away.

Reconnect delay is exponential backoff with full jitter (agent/reconnect.py
says when it starts over, and why). ``wake()`` cuts it short: a panic, or the
household acknowledging a neighbour's alert, retries at once and then every
``urgent_retry_s`` until the message is with the broker.
"""

from __future__ import annotations

import collections
import logging
import random
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

from agent.config import BrokerConfig
from agent.delivery import Deliveries
from agent.outbox import Message, Outbox, is_urgent
from agent.reconnect import Reconnect
from agent.tls_session import client_context
from agent.topic_aliases import TopicAliases
from protocol.codec import decode_receipt, encode, with_seq
from protocol.errors import ProtocolError
from protocol.messages import State
from protocol.qos import DELIVERY
from protocol.receipts import Range, covers
from protocol.topics import Channel, alert_topic, cmd_topic, parse_topic, receipt_topic, state_topic
from xlconfig import default_of

log = logging.getLogger(__name__)

CONNACK_TIMEOUT_S = 30.0
# PUBACK reason 0x10: the broker took the message but nobody subscribes to it,
# so it went nowhere. The hub is the only reader of uplink topics; this happens
# when its subscriptions are gone, e.g. Mosquitto restarted (it does not restore
# shared subscriptions from persistence) and the hub has not reconnected yet.
NO_MATCHING_SUBSCRIBERS = 16


@dataclass(frozen=True, slots=True)
class LinkSettings:
    device_id: str
    group: str
    host: str
    port: int
    ca: Path
    cert: Path
    key: Path
    # The broker section's defaults, written once in agent/config.py (this said keepalive 60 while the config said 45).
    keepalive: int = default_of(BrokerConfig, "keepalive")
    keepalive_idle: int | None = default_of(BrokerConfig, "keepalive_idle")  # outside armed hours (None: never)
    tls_version: str = default_of(BrokerConfig, "tls_version")
    max_inflight: int = default_of(BrokerConfig, "max_inflight")
    session_expiry: int = default_of(BrokerConfig, "session_expiry")
    backoff_base_s: float = default_of(BrokerConfig, "backoff_base_s")
    backoff_cap_s: float = default_of(BrokerConfig, "backoff_cap_s")
    urgent_retry_s: float = 2.0  # reconnect delay (upper bound) while a panic or ack waits to go out
    receipt_window: int = 50  # kept messages out at once without the hub's receipt
    receipt_timeout_s: float = 30.0  # no receipt this long after the PUBACK: maybe lost
    probe_base_s: float = 2.0  # while the hub is silent: one probe, at this delay doubling to the cap
    probe_cap_s: float = 60.0
    agent_version: str | None = None
    boot: int | None = None
    health_interval_s: int | None = None


class Link:
    def __init__(
        self,
        settings: LinkSettings,
        outbox: Outbox,
        on_message: Callable[[str, bytes], None] | None = None,
        now_ms: Callable[[], int] | None = None,
        on_status: Callable[[bool], None] | None = None,
        rng: random.Random | None = None,
        armed: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings
        self._armed = armed
        # One context for every connection: it carries the TLS session from one to the next.
        self.tls = client_context(settings.ca, settings.cert, settings.key, settings.tls_version)
        self.keepalive_now = settings.keepalive  # what this connection asked the broker for
        self._subscribed = False  # the broker's session holds our subscriptions (this process made them)
        self.aliases = TopicAliases()
        self._switching = False  # reconnecting on purpose for another keepalive: no backoff
        self.outbox = outbox
        self._on_message = on_message
        self._on_status = on_status
        self._receipt_topic = receipt_topic(settings.device_id)
        self._now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)
        self._rng = rng or random.Random()
        self.reconnect = Reconnect(settings.backoff_base_s, settings.backoff_cap_s, self._rng)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._inflight: dict[int, tuple[int, bool]] = {}  # paho mid -> (outbox seq, carries "q")
        self._clean = False  # this connection starts a clean session (a new outbox)
        self._acked: list[int] = []  # sent without "q" (memory overflow): deleted on PUBACK
        self._refused: set[int] = set()  # seqs the broker refused; retried on the next connection only
        self._receipts: list[Range] = []  # from the hub, applied by the pump
        self._done: collections.deque[int] = collections.deque(maxlen=1024)  # receipted before their PUBACK
        s = settings
        self.deliveries = Deliveries(s.receipt_window, s.receipt_timeout_s, (s.probe_base_s, s.probe_cap_s))
        self._volatile: collections.deque[tuple[str, bytes, int, bool]] = collections.deque(maxlen=8)
        self._wake = threading.Event()
        self._wakes = 0
        self._urgent = False  # a panic or ack waits to go out: reconnect now, and retry quickly
        self._urgent_mids: set[int] = set()  # urgent messages of this connection not yet PUBACKed
        self._connected_at = 0.0
        self.sent = 0  # publications of kept messages, re-sends included (tests, health)
        self.connected = False
        self.connects = 0
        self.subscribe_requests = 0
        self.last_error: str | None = None
        self.delays: list[float] = []  # recent backoff delays, for health and tests

    # -- public ----------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="xl-link", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Say ``offline`` ourselves (a clean disconnect suppresses the will), then stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Something urgent is in the outbox (a panic, an ack of a neighbour's
        alert): skip the reconnect backoff. Any thread may call this."""
        self._wakes += 1
        self._urgent = True
        self._wake.set()

    @property
    def attempts(self) -> int:
        """Connection attempts since the backoff last started over."""
        return self.reconnect.attempts

    @property
    def unreceipted(self) -> int:
        """Kept messages the broker has and the hub has not receipted yet."""
        return len(self.deliveries.awaiting)

    def publish_volatile(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Health and the like: sent if connected soon, otherwise dropped (never stored)."""
        if not self.connected:
            return False
        self._volatile.append((topic, payload, qos, retain))
        return True

    # -- the link thread -------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            connects = self.connects
            try:
                self._session()
            except Exception as exc:  # a bug or a TLS/socket surprise must not end the link
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                log.warning("mqtt link: %s", self.last_error)
            self._set_connected(False)
            if self._urgent_mids:  # urgent messages the broker never confirmed
                self._urgent = True
                self._urgent_mids.clear()
            if self._stop.is_set():
                break
            if self.connects > connects:
                self.reconnect.connection_ended(time.monotonic() - self._connected_at)
            delay = self.reconnect.next_delay()
            if self._switching:
                self._switching, delay = False, 0.0
                self.reconnect.attempts = 0
            if self._urgent:
                delay = min(delay, self._rng.uniform(0.0, self.settings.urgent_retry_s))
            self.delays = [*self.delays[-19:], delay]
            if self._wake.wait(delay):
                self._wake.clear()

    def _new_client(self) -> mqtt.Client:
        s = self.settings
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.device_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        # No username: the broker takes it from the certificate (use_identity_as_username), so
        # sending it would only cost 22 bytes a connection.
        client.tls_set_context(self.tls)
        client.max_inflight_messages_set(s.max_inflight)
        client.max_queued_messages_set(0)
        offline = DELIVERY[Channel.STATE]
        client.will_set(state_topic(s.device_id), encode(State(state="offline")), qos=offline.qos, retain=True)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        client.on_subscribe = self._handle_subscribe
        return client

    def _session(self) -> None:
        s = self.settings
        client = self._client = self._new_client()
        self._inflight.clear()
        self._refused.clear()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = s.session_expiry
        # A new outbox numbers its rows from 1 again: start a clean session once, so no
        # receipt or command queued for the device's old life is delivered to it.
        self._clean = self.outbox.numbering_is_new()
        self.keepalive_now = self.wanted_keepalive()
        client.connect(s.host, s.port, keepalive=self.keepalive_now, clean_start=self._clean, properties=props)
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
                    if self._switch_due():
                        log.info("keepalive %d s → %d s: reconnecting", self.keepalive_now, self.wanted_keepalive())
                        self._switching = True
                        return  # the finally's DISCONNECT is a clean one: the broker drops the will
            if self.connected:
                self._say_offline(client)
        finally:
            self._client = None
            try:
                client.disconnect()
                client.loop(timeout=0.1)
            except Exception as exc:  # the socket may already be gone
                log.debug("disconnect: %s", exc)

    def wanted_keepalive(self) -> int:
        """Short in armed hours, so the broker declares a dead device offline 1.5x of it after its last packet;
        long otherwise, so a quiet day costs few pings (docs: protocol/README.md, Transport)."""
        idle = self.settings.keepalive_idle
        if idle is None or self._armed is None or self._armed():
            return self.settings.keepalive
        return idle

    def _switch_due(self) -> bool:
        """Another keepalive is wanted, and nothing is on its way that a reconnect would re-send."""
        if self.wanted_keepalive() == self.keepalive_now:
            return False
        return not (self._inflight or self.deliveries.awaiting or self._urgent or self._volatile)

    def _pump(self, client: mqtt.Client) -> None:
        if self._acked:
            done, self._acked = self._acked, []
            self.outbox.delete(done)
        if self._receipts:
            ranges, self._receipts = self._receipts, []
            self.outbox.delete_ranges(ranges)
            self._done.extend(self.deliveries.receipted(ranges))
            # A receipt can beat its own PUBACK: do not start awaiting those.
            self._done.extend(seq for seq, _ in self._inflight.values() if covers(ranges, seq))
        self.outbox.retry()
        while self._volatile:
            topic, payload, qos, retain = self._volatile.popleft()
            self.aliases.publish(client, topic, payload, qos, retain)
        for msg in self.outbox.get(self.deliveries.resend(self.outbox.sizes)):
            self._send(client, msg)
        wakes = self._wakes
        outstanding = len(self._inflight) + len(self.deliveries.awaiting) + len(self._refused)
        # The cheap in-memory count first: no query 10 times a second when idle.
        if self.outbox.depth > outstanding:
            room = min(self.settings.max_inflight - len(self._inflight), self.deliveries.room(len(self._inflight)))
            skip = [seq for seq, _ in self._inflight.values()]
            skip += [*self.deliveries.awaiting, *self._refused]
            # Urgent messages come first and do not wait for room.
            for msg in self.outbox.pending(max(room, 4), exclude=skip):
                if room <= 0 and not is_urgent(msg):
                    break
                if not self._send(client, msg):
                    break
                room -= 1
        if self._wakes == wakes:
            self._urgent = False  # whatever was urgent is in flight (or back to urgent if the link drops)

    def _send(self, client: mqtt.Client, msg: Message) -> bool:
        payload, numbered = msg.payload, False
        if msg.seq > 0:
            try:
                payload, numbered = with_seq(parse_topic(msg.topic).channel, msg.payload, msg.seq), True
            except ProtocolError as exc:  # not ours to fix here: send it as stored, forget it on PUBACK
                log.warning("outbox row %d sent without its number: %s", msg.seq, exc)
        info = self.aliases.publish(client, msg.topic, payload, 1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.last_error = f"publish: {mqtt.error_string(info.rc)}"
            return False
        self._inflight[info.mid] = (msg.seq, numbered)
        self.sent += 1
        if is_urgent(msg):
            self._urgent_mids.add(info.mid)
        return True

    def _say_offline(self, client: mqtt.Client) -> None:
        offline = encode(State(state="offline", time_ms=self._now_ms()))
        info = self.aliases.publish(client, state_topic(self.settings.device_id), offline, 1, True)
        deadline = time.monotonic() + 2.0
        while not info.is_published() and time.monotonic() < deadline:
            if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                break

    # -- paho callbacks (on the link thread, inside loop()) ---------------

    def _handle_connect(self, client: mqtt.Client, _ud: object, flags: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"connect refused: {reason}"
            client.disconnect()
            return
        s = self.settings
        self.tls.remember(client.socket())
        self.aliases.reset(props)
        kept = bool(getattr(flags, "session_present", False)) and not self._clean
        if self._clean:
            self.outbox.numbering_announced()
            self._clean = False
        self.connects += 1
        self._connected_at = time.monotonic()
        self.last_error = None
        # The broker kept our session, with the subscriptions this process made: asking again
        # would only cost a SUBSCRIBE and SUBACK on every reconnect.
        if not (kept and self._subscribed):
            self._subscribed = False
            self.subscribe_requests += 1
            client.subscribe([(cmd_topic(s.device_id), 1), (alert_topic(s.group), 1), (self._receipt_topic, 1)])
        online = State(
            state="online",
            time_ms=self._now_ms(),
            agent_version=s.agent_version,
            boot=s.boot,
            interval_s=s.health_interval_s,
        )
        self.aliases.publish(client, state_topic(s.device_id), encode(online), 1, True)
        self._set_connected(True)

    def _handle_subscribe(self, _c: mqtt.Client, _ud: object, _mid: int, reasons: Any, _p: object) -> None:
        self._subscribed = all(not getattr(r, "is_failure", False) for r in reasons)

    def _handle_disconnect(self, _c: mqtt.Client, _ud: object, _flags: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            self.last_error = f"disconnected: {reason}"
        self._set_connected(False)

    def _handle_publish(self, _c: mqtt.Client, _ud: object, mid: int, reason: object, _p: object) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        seq, numbered = entry
        self._urgent_mids.discard(mid)
        if getattr(reason, "is_failure", False):
            # The broker refused it (e.g. not authorised): keep it and say so; a
            # refused message is an operator problem, not something to drop silently.
            self.last_error = f"publish refused: {reason}"
            self._refused.add(seq)
            return
        if getattr(reason, "value", 0) == NO_MATCHING_SUBSCRIBERS:
            # Accepted but delivered to no one (the hub is not subscribed, e.g. just
            # after a broker restart): certainly lost, and a sign the hub is away.
            self.last_error = "publish reached no subscriber (hub not subscribed)"
            if numbered:
                self.deliveries.nobody_heard(seq)
            else:
                self._refused.add(seq)
            return
        if not numbered:
            self._acked.append(seq)
        elif seq not in self._done:
            self.deliveries.broker_took(seq)  # kept until the hub's receipt

    def _handle_message(self, _c: mqtt.Client, _ud: object, message: mqtt.MQTTMessage) -> None:
        if message.topic == self._receipt_topic:
            try:
                self._receipts.extend(decode_receipt(bytes(message.payload)).ranges)
                if self.last_error and "no subscriber" in self.last_error:
                    self.last_error = None
            except ProtocolError as exc:
                log.warning("bad receipt from the hub: %s", exc)
            return
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

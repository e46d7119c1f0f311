"""A fleet of simulated devices driven by one thread.

3,312 devices must not mean 3,312 OS threads. Every device is a real paho
client with its own TLS client certificate, but none calls ``loop_start``:
one selector watches all their sockets, and this module calls paho's
``loop_read``, ``loop_write`` and ``loop_misc`` itself (paho's documented
external-event-loop hooks). Traffic comes from a time-ordered heap of
per-device actions.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import selectors
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from protocol import Event, Health, State, encode
from protocol.ids import EventIdGenerator
from protocol.topics import event_topic, health_topic, state_topic


@dataclass(frozen=True)
class Identity:
    device_id: str
    cert: str | None = None  # PEM paths; None for a plain test broker
    key: str | None = None


@dataclass
class Traffic:
    """What the fleet does, in fleet-wide rates."""

    heartbeat_s: float = 60.0
    event_rate: float = 1.0  # person/motion visits per second across the fleet
    dusk_at_s: float | None = None  # when the dusk burst starts (seconds into the run)
    dusk_factor: float = 5.0
    dusk_len_s: float = 60.0
    panic_per_hour: float = 2.0
    churn_per_min: float = 0.0  # share of the fleet that silently drops per minute
    offline_s: float = 30.0  # how long a dropped device stays away


@dataclass
class Report:
    sent: Counter[str] = field(default_factory=Counter)
    acked: Counter[str] = field(default_factory=Counter)
    connected: int = 0
    connect_failures: int = 0
    dropped_offline: int = 0

    def merge(self, other: Report) -> None:
        self.sent.update(other.sent)
        self.acked.update(other.acked)
        self.connected += other.connected
        self.connect_failures += other.connect_failures
        self.dropped_offline += other.dropped_offline


class SimDevice:
    def __init__(self, ident: Identity, host: str, port: int, ca: str | None, boot: int, report: Report) -> None:
        self.ident = ident
        self.gen = EventIdGenerator(boot)
        self.boot = boot
        self.started = time.monotonic()
        self.host, self.port = host, port
        self.inflight: dict[int, str] = {}
        self.online = False
        self.index = 0
        self.report = report
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=ident.device_id, protocol=mqtt.MQTTv5)
        if ca is not None:
            c.tls_set(ca_certs=ca, certfile=ident.cert, keyfile=ident.key, cert_reqs=ssl.CERT_REQUIRED)
        c.will_set(state_topic(ident.device_id), encode(State(state="offline")), qos=1, retain=True)
        c.on_connect = self._connected
        c.on_publish = self._published
        c.on_disconnect = self._disconnected
        self.client = c

    def _connected(self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        if rc.is_failure:
            return
        self.online = True
        state = State(state="online", time_ms=now_ms(), agent_version="sim", boot=self.boot, interval_s=60)
        self.publish("state", state_topic(self.ident.device_id), encode(state), retain=True)

    def _disconnected(self, *_args: object) -> None:
        self.online = False

    def _published(self, _c: mqtt.Client, _u: object, mid: int, _rc: object, _p: object) -> None:
        kind = self.inflight.pop(mid, None)
        if kind is not None:
            self.report.acked[kind] += 1

    def publish(self, kind: str, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        if not self.online:
            return False
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=Properties(PacketTypes.PUBLISH))
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        self.report.sent[kind] += 1
        if qos:
            self.inflight[info.mid] = kind
        return True

    def heartbeat(self) -> bool:
        health = Health(
            time_ms=now_ms(),
            uptime_s=int(time.monotonic() - self.started),
            agent_version="sim",
            boot=self.boot,
            interval_s=60,
            cpu_temp_c=48.0 + random.random() * 8,
            throttled=0,
            camera="ok",
            camera_fps=10.0,
            motion_fps=10.0,
            inference_ms_p50=40.0,
            outbox_depth=0,
            outbox_dropped=0,
            armed=True,
            clock="synced",
        )
        return self.publish("health", health_topic(self.ident.device_id), encode(health), qos=0)

    def event(self, kind: str, phase: str, event_id: int, score: int) -> bool:
        x = random.randint(0, 700)
        y = random.randint(0, 300)
        ev = Event(
            event_id=event_id,
            kind=kind,
            phase=phase,
            time_ms=now_ms(),
            score=score,
            bbox=None if kind == "panic" else (x, y, x + 150, y + 500),
            count=1 if kind == "person" else None,
            duration_s=8 if phase == "end" else None,
        )
        return self.publish(
            kind if phase == "start" else f"{kind}_{phase}", event_topic(self.ident.device_id), encode(ev)
        )


def now_ms() -> int:
    return int(time.time() * 1000)


class Fleet:
    """Runs a set of devices for ``duration`` seconds and reports by kind."""

    def __init__(
        self,
        idents: list[Identity],
        host: str,
        port: int,
        ca: str | None,
        traffic: Traffic,
        seed: int = 1,
        connect_rate: float = 300.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.traffic = traffic
        self.report = Report()
        self.sel = selectors.DefaultSelector()
        self.connect_rate = connect_rate
        boot = int(time.time()) % 100_000  # a fresh boot number per run keeps event ids unique
        self.devices = [SimDevice(i, host, port, ca, boot, self.report) for i in idents]
        for index, dev in enumerate(self.devices):
            dev.index = index
            dev.client.on_socket_open = self._sock_open
            dev.client.on_socket_close = self._sock_close
            dev.client.on_socket_register_write = self._want_write
            dev.client.on_socket_unregister_write = self._no_write
        self._heap: list[tuple[float, int, str, int]] = []
        self._tie = 0

    # paho external-loop hooks -------------------------------------------------
    def _sock_open(self, client: mqtt.Client, _u: object, sock: object) -> None:
        self.sel.register(sock, selectors.EVENT_READ, client)  # type: ignore[arg-type]

    def _sock_close(self, _c: mqtt.Client, _u: object, sock: object) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(sock)  # type: ignore[arg-type]

    def _want_write(self, client: mqtt.Client, _u: object, sock: object) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)  # type: ignore[arg-type]

    def _no_write(self, client: mqtt.Client, _u: object, sock: object) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(sock, selectors.EVENT_READ, client)  # type: ignore[arg-type]

    # scheduling -----------------------------------------------------------------
    def _at(self, when: float, action: str, index: int) -> None:
        self._tie += 1
        heapq.heappush(self._heap, (when, self._tie, action, index))

    def _event_rate(self, t: float) -> float:
        tr = self.traffic
        if tr.dusk_at_s is not None and tr.dusk_at_s <= t < tr.dusk_at_s + tr.dusk_len_s:
            return tr.event_rate * tr.dusk_factor
        return tr.event_rate

    def run(self, duration: float) -> Report:
        start = time.monotonic()
        n = len(self.devices)
        for i in range(n):  # ramp connections so the broker is not hit by n handshakes at once
            self._at(i / self.connect_rate, "connect", i)
            self._at(i / self.connect_rate + 2 + self.rng.uniform(0, self.traffic.heartbeat_s), "heartbeat", i)
        self._at(self.rng.expovariate(max(self._event_rate(0), 1e-9)), "visit", -1)
        if self.traffic.panic_per_hour > 0:
            self._at(self.rng.expovariate(self.traffic.panic_per_hour / 3600), "panic", -1)
        if self.traffic.churn_per_min > 0:
            self._at(60 / (self.traffic.churn_per_min * n), "churn", -1)
        last_misc = 0.0
        while (t := time.monotonic() - start) < duration:
            while self._heap and self._heap[0][0] <= t:
                _, _, action, index = heapq.heappop(self._heap)
                self._do(action, index, t)
            timeout = min(0.05, max(0.0, (self._heap[0][0] - t) if self._heap else 0.05))
            for key, mask in self.sel.select(timeout):
                client: mqtt.Client = key.data
                if mask & selectors.EVENT_READ:
                    client.loop_read()
                if mask & selectors.EVENT_WRITE:
                    client.loop_write()
            if t - last_misc >= 1.0:
                last_misc = t
                for dev in self.devices:
                    if dev.client.socket() is not None:
                        dev.client.loop_misc()
        self._drain(2.0)
        for dev in self.devices:
            if dev.client.socket() is not None:
                dev.client.disconnect()
                dev.client.loop_write()
        return self.report

    def _drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and any(d.inflight for d in self.devices if d.online):
            for key, mask in self.sel.select(0.05):
                if mask & selectors.EVENT_READ:
                    key.data.loop_read()
                if mask & selectors.EVENT_WRITE:
                    key.data.loop_write()

    def _do(self, action: str, index: int, t: float) -> None:
        rng, tr, n = self.rng, self.traffic, len(self.devices)
        if action == "connect":
            dev = self.devices[index]
            try:
                dev.client.connect(dev.host, dev.port, keepalive=45)
                self.report.connected += 1
            except (OSError, ssl.SSLError):
                self.report.connect_failures += 1
        elif action == "heartbeat":
            dev = self.devices[index]
            dev.heartbeat()
            self._at(t + tr.heartbeat_s * rng.uniform(0.95, 1.05), "heartbeat", index)
        elif action == "visit":
            dev = self.devices[rng.randrange(n)]
            eid = dev.gen.next()
            kind = "person" if rng.random() < 0.7 else "motion"
            if dev.event(kind, "start", eid, rng.randint(60, 98)):
                self._at(t + rng.uniform(3, 12), f"end:{kind}:{eid}", dev.index)
            self._at(t + rng.expovariate(self._event_rate(t)), "visit", -1)
        elif action.startswith("end:"):
            _, kind, eid_text = action.split(":")
            self.devices[index].event(kind, "end", int(eid_text), 90)
        elif action == "panic":
            dev = self.devices[rng.randrange(n)]
            dev.event("panic", "start", dev.gen.next(), 100)
            self._at(t + rng.expovariate(tr.panic_per_hour / 3600), "panic", -1)
        elif action == "churn":
            dev = self.devices[rng.randrange(n)]
            sock = dev.client.socket()
            if dev.online and sock is not None:
                # A silent death (power cut): close the socket without DISCONNECT so the will fires.
                self._sock_close(dev.client, None, sock)
                sock.close()
                dev.online = False
                self.report.dropped_offline += 1
                self._at(t + tr.offline_s, "reconnect", dev.index)
            self._at(t + 60 / (tr.churn_per_min * n), "churn", -1)
        elif action == "reconnect":
            dev = self.devices[index]
            try:
                dev.client.reconnect()
            except (OSError, ssl.SSLError):
                self.report.connect_failures += 1

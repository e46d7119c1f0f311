"""A fleet of simulated devices driven by one thread.

3,312 devices must not mean 3,312 OS threads. Every device is a real paho
client with its own TLS client certificate, but none calls ``loop_start``:
one selector watches all their sockets, and this module calls paho's
``loop_read``, ``loop_write`` and ``loop_misc`` itself (paho's documented
external-event-loop hooks). Traffic comes from a time-ordered heap of
per-device actions.

With ``UpdateBehaviour`` (off by default) each device also answers the
``update`` command as a real agent does (docs/ota.md section 2): it acks,
reports ``us`` dl (``ub`` growing at its bandwidth), inst, restarts (retained
offline, gone, back with the new ``ver``), trial, then ok, or fails (``fail``
before the switch, ``rb`` after it) with a ``ue`` reason. A sample of devices
can really download the release from the hub (sim.update_download) on a
thread of its own, while the device's protocol timeline waits for it.
"""

from __future__ import annotations

import contextlib
import heapq
import random
import selectors
import ssl
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from protocol import Ack, Event, Health, ProtocolError, State, encode
from protocol.codec import decode_command
from protocol.ids import EventIdGenerator
from protocol.topics import ack_topic, cmd_topic, event_topic, health_topic, state_topic
from sim.update_download import DownloadResult, RealDownload, real_download


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


@dataclass(frozen=True)
class UpdateBehaviour:
    """How simulated devices answer ``update`` (plain data: it crosses to worker processes).

    Defaults are the agent's: ``bandwidth_bytes_per_s`` is its update
    bandwidth cap (128 KiB/s) and ``size_bytes`` the agent-only delta update
    bench/update_bytes.py measured (metadata + manifest + bsdiff4). The
    restart and commit times are the ones a bench scales down."""

    from_version: str = "0.9.0"  # what every device runs before the update
    size_bytes: int = 37_140
    bandwidth_bytes_per_s: float = 131_072.0
    progress_s: float = 10.0  # while downloading, a health with the growing ub this often
    install_s: float = 2.0  # verify + venv from the wheels, before the restart
    restart_s: float = 20.0  # the agent's restart on the new release: gone this long
    restart_jitter_s: float = 5.0  # ± uniformly
    commit_s: float = 60.0  # trial → the health gate passes (ok) or fails (rb)
    fail_fraction: float = 0.0  # share of devices whose update fails
    rollback_share: float = 0.5  # of those, the share that fails after the switch (rb) rather than before (fail)
    real: RealDownload | None = None  # a sample really downloads from the hub

    def fate(self, device_id: str) -> str:
        """ "ok", "fail" or "rb"; a hash of the id, so it is the same in every process and run."""
        u = zlib.crc32(f"fate:{device_id}".encode()) / 2**32
        if u >= self.fail_fraction:
            return "ok"
        return "rb" if u < self.fail_fraction * self.rollback_share else "fail"

    def samples(self, device_id: str) -> bool:
        return self.real is not None and zlib.crc32(f"real:{device_id}".encode()) % self.real.every == 0


FAIL_REASON = "sim: injected failure before the switch (fail_fraction)"
RB_REASON = "health gate: sim injected failure after the switch (fail_fraction)"


@dataclass
class Report:
    sent: Counter[str] = field(default_factory=Counter)
    acked: Counter[str] = field(default_factory=Counter)
    connected: int = 0
    connect_failures: int = 0
    dropped_offline: int = 0
    # update protocol (UpdateBehaviour)
    commands: Counter[str] = field(default_factory=Counter)  # received, by op
    update_outcomes: Counter[str] = field(default_factory=Counter)  # ok / fail / rb / already
    update_bytes: int = 0  # simulated bytes downloaded (size_bytes per started download)
    restarts: int = 0
    commanded: int = 0  # devices that received at least one update command
    real_downloads: list[DownloadResult] = field(default_factory=list)

    def merge(self, other: Report) -> None:
        self.sent.update(other.sent)
        self.acked.update(other.acked)
        self.connected += other.connected
        self.connect_failures += other.connect_failures
        self.dropped_offline += other.dropped_offline
        self.commands.update(other.commands)
        self.update_outcomes.update(other.update_outcomes)
        self.update_bytes += other.update_bytes
        self.restarts += other.restarts
        self.commanded += other.commanded
        self.real_downloads.extend(other.real_downloads)


@dataclass
class UpdateRun:
    """One device's update in progress. ``gen`` tells a scheduled step of this
    run from one of a run a newer command replaced."""

    version: str
    rollout: str | None
    fate: str
    gen: int
    phase: str = "dl"  # dl, inst, restart, trial, rb_restart, done
    dl_started: float = 0.0
    real: threading.Thread | None = None
    real_result: list[DownloadResult] = field(default_factory=list)


class SimDevice:
    def __init__(
        self,
        ident: Identity,
        host: str,
        port: int,
        ca: str | None,
        boot: int,
        report: Report,
        updates: UpdateBehaviour | None = None,
    ) -> None:
        self.ident = ident
        self.ca = ca
        self.updates = updates
        self.version = updates.from_version if updates is not None else "sim"
        self.run: UpdateRun | None = None
        self.commanded = False
        self.gens = 0
        # the update keys of health: uv, us, ue, ub (a fixed value unless downloading), ro
        self.uv: str | None = None
        self.us: str | None = None
        self.ue: str | None = None
        self.ub: int | None = None
        self.ro: str | None = None
        self.leaving: tuple[int, int] | None = None  # (mid of the offline state, run gen) while restarting
        self.schedule: Callable[[float, str, int], None] | None = None  # the fleet's, set by Fleet
        self.clock: Callable[[], float] = time.monotonic
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
        if updates is not None:
            c.on_message = self._message
        self.client = c

    def _connected(self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        if rc.is_failure:
            return
        self.online = True
        if self.updates is not None:
            # Subscribed before the online state goes out: the hub sends only to devices it sees online.
            client.subscribe(cmd_topic(self.ident.device_id), qos=1)
        state = State(state="online", time_ms=now_ms(), agent_version=self.version, boot=self.boot, interval_s=60)
        self.publish("state", state_topic(self.ident.device_id), encode(state), retain=True)
        if self.run is not None and self.run.phase in ("restart", "rb_restart"):
            self._came_back()

    def _disconnected(self, *_args: object) -> None:
        self.online = False

    def _published(self, _c: mqtt.Client, _u: object, mid: int, _rc: object, _p: object) -> None:
        kind = self.inflight.pop(mid, None)
        if kind is not None:
            self.report.acked[kind] += 1
        if self.leaving is not None and self.leaving[0] == mid:
            self._leave(self.leaving[1])

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
        ub = self.ub
        if self.run is not None and self.run.phase == "dl" and self.updates is not None:
            ub = min(
                self.updates.size_bytes, int((self.clock() - self.run.dl_started) * self.updates.bandwidth_bytes_per_s)
            )
        health = Health(
            time_ms=now_ms(),
            uptime_s=int(time.monotonic() - self.started),
            agent_version=self.version,
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
            update_version=self.uv,
            update_state=self.us,
            update_error=self.ue,
            update_bytes=ub,
            update_rollout=self.ro,
        )
        return self.publish("health", health_topic(self.ident.device_id), encode(health), qos=0)

    # the update protocol ----------------------------------------------------------
    def _message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            cmd = decode_command(bytes(msg.payload))
        except ProtocolError as exc:
            self._ack("unknown", False, f"bad command: {exc}")
            return
        self.report.commands[cmd.op] += 1
        if cmd.op == "update" and not self.commanded:
            self.commanded = True
            self.report.commanded += 1
        if cmd.op != "update":
            self._ack(cmd.command_id, False, f"xl-sim does not simulate op {cmd.op!r}")
            return
        version = str(cmd.args["ver"])
        rollout = cmd.args.get("ro")
        self._ack(cmd.command_id, True, None)  # accepted; progress comes in health
        if version == self.version and (self.run is None or self.run.phase == "done"):
            self.report.update_outcomes["already"] += 1
            self._set(uv=version, us="ok", ue=None, ro=rollout)
            return
        if self.run is not None and self.run.version == version and self.run.phase != "done":
            return  # a resend while working on it: the agent carries on with what it is doing
        assert self.updates is not None and self.schedule is not None
        self.gens += 1
        run = UpdateRun(
            version, None if rollout is None else str(rollout), self.updates.fate(self.ident.device_id), self.gens
        )
        run.dl_started = self.clock()
        self.run = run
        self.report.update_bytes += self.updates.size_bytes
        if self.updates.samples(self.ident.device_id):
            real = self.updates.real
            assert real is not None
            run.real = threading.Thread(
                target=lambda: run.real_result.append(real_download(real, self.ident, self.ca, version)),
                name=f"dl-{self.ident.device_id}",
                daemon=True,
            )
            run.real.start()
        self._set(uv=version, us="dl", ue=None, ub=0, ro=run.rollout)
        now = run.dl_started
        dl_s = self.updates.size_bytes / self.updates.bandwidth_bytes_per_s
        t = self.updates.progress_s
        while t < dl_s:
            self.schedule(now + t, f"u:progress:{run.gen}", self.index)
            t += self.updates.progress_s
        self.schedule(now + dl_s, f"u:downloaded:{run.gen}", self.index)

    def _ack(self, ref: str, ok: bool, err: str | None) -> None:
        ack = Ack(of="cmd", ref_id=ref, ok=ok, time_ms=now_ms(), error=err)
        self.publish("ack", ack_topic(self.ident.device_id), encode(ack))

    def _set(self, **keys: object) -> None:
        """New update keys; a health at once when ``us`` changed (docs/ota.md section 2)."""
        before = self.us
        for k, v in keys.items():
            setattr(self, k, v)
        if self.us != before:
            self.heartbeat()

    def update_step(self, step: str, gen: int) -> None:
        run, u = self.run, self.updates
        if run is None or run.gen != gen or u is None or self.schedule is None:
            return  # a step of an update a newer command replaced
        now = self.clock()
        if step == "progress":
            self.heartbeat()
        elif step == "downloaded":
            if run.real is not None and run.real.is_alive():
                self.schedule(now + 0.5, f"u:downloaded:{gen}", self.index)  # the real download sets the pace
                return
            real_error = run.real_result[0].error if run.real_result else None
            if real_error is not None or run.fate == "fail":
                run.phase = "done"
                self.report.update_outcomes["fail"] += 1
                self._set(us="fail", ue=(real_error or FAIL_REASON)[:160], ub=u.size_bytes)
                return
            run.phase = "inst"
            self._set(us="inst", ub=u.size_bytes)
            self.schedule(now + u.install_s, f"u:restart:{gen}", self.index)
        elif step == "restart":
            run.phase = "restart"
            self.version = run.version  # the current symlink now points at the new release
            self._go_away(now, gen)
        elif step == "leave":
            self._leave(gen)
        elif step == "back":
            self._reconnect(now, gen)
        elif step == "gate":
            if run.fate == "rb":
                run.phase = "rb_restart"
                self.version = u.from_version  # switched back by itself, no hub needed
                self._go_away(now, gen)
            else:
                run.phase = "done"
                self.report.update_outcomes["ok"] += 1
                self._set(us="ok")

    def _go_away(self, now: float, gen: int) -> None:
        """The agent's restart: retained offline (as agent.link says it on a clean stop), DISCONNECT, gone."""
        assert self.updates is not None and self.schedule is not None
        self.report.restarts += 1
        offline = encode(State(state="offline", time_ms=now_ms()))
        info = self.client.publish(state_topic(self.ident.device_id), offline, qos=1, retain=True)
        self.report.sent["state"] += 1
        self.inflight[info.mid] = "state"
        # Like agent.link: DISCONNECT only once the offline state is acked (at most 2 s), or
        # paho would send it again on the next session, after the device is back.
        self.leaving = (info.mid, gen)
        self.schedule(now + 2.0, f"u:leave:{gen}", self.index)

    def _leave(self, gen: int) -> None:
        if self.leaving is None or self.leaving[1] != gen or self.updates is None or self.schedule is None:
            return
        self.leaving = None
        self.client.disconnect()
        self.online = False
        u = self.updates
        away = max(0.1, u.restart_s + random.uniform(-u.restart_jitter_s, u.restart_jitter_s))
        self.schedule(self.clock() + away, f"u:back:{gen}", self.index)

    def _reconnect(self, now: float, gen: int) -> None:
        assert self.schedule is not None
        try:
            self.client.reconnect()
        except (OSError, ssl.SSLError):
            self.report.connect_failures += 1
            self.schedule(now + 5.0, f"u:back:{gen}", self.index)

    def _came_back(self) -> None:
        """Online again after a restart: report the trial, or the rollback, at once."""
        run, u = self.run, self.updates
        assert run is not None and u is not None and self.schedule is not None
        if run.phase == "restart":
            run.phase = "trial"
            self.us = None  # a restarted agent's first health always carries us
            self._set(us="trial", ue=None)
            self.schedule(self.clock() + u.commit_s, f"u:gate:{run.gen}", self.index)
        else:
            run.phase = "done"
            self.report.update_outcomes["rb"] += 1
            self.us = None
            self._set(us="rb", ue=RB_REASON)

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
        updates: UpdateBehaviour | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.traffic = traffic
        self.report = Report()
        self.sel = selectors.DefaultSelector()
        self.connect_rate = connect_rate
        boot = int(time.time()) % 100_000  # a fresh boot number per run keeps event ids unique
        self.devices = [SimDevice(i, host, port, ca, boot, self.report, updates) for i in idents]
        self._start = time.monotonic()
        for index, dev in enumerate(self.devices):
            dev.index = index
            dev.schedule = self._at
            dev.clock = self._now
            dev.client.on_socket_open = self._sock_open
            dev.client.on_socket_close = self._sock_close
            dev.client.on_socket_register_write = self._want_write
            dev.client.on_socket_unregister_write = self._no_write
        self._heap: list[tuple[float, int, str, int]] = []
        self._tie = 0
        self._stopping = False

    def stop(self) -> None:
        """End ``run`` early (safe from a signal handler): it drains, disconnects and reports as at its end."""
        self._stopping = True

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

    def _now(self) -> float:
        """Seconds into the run: the heap's clock."""
        return time.monotonic() - self._start

    def _event_rate(self, t: float) -> float:
        tr = self.traffic
        if tr.dusk_at_s is not None and tr.dusk_at_s <= t < tr.dusk_at_s + tr.dusk_len_s:
            return tr.event_rate * tr.dusk_factor
        return tr.event_rate

    def run(self, duration: float) -> Report:
        start = self._start = time.monotonic()
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
        while (t := time.monotonic() - start) < duration and not self._stopping:
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
            if dev.run is not None and dev.run.real is not None:
                dev.run.real.join(30)
            if dev.run is not None and dev.run.real_result:
                self.report.real_downloads.extend(dev.run.real_result)
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
        elif action.startswith("u:"):
            _, step, gen = action.split(":")
            self.devices[index].update_step(step, int(gen))
        elif action == "reconnect":
            dev = self.devices[index]
            try:
                dev.client.reconnect()
            except (OSError, ssl.SSLError):
                self.report.connect_failures += 1

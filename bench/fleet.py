"""The county at full size: 3,312 TLS devices → Mosquitto → xl-hub (figures, not pass/fail).

The whole real path, each part as its own process, started the way a county
starts it:

1. ``xl-provision ca init`` + ``batch`` of a generated CSV (3,312 households
   plus 3 probe devices). The state folder is cached under
   ``var/bench-fleet/state-<n>/`` and reused when it is complete.
2. ``xl-provision broker-config`` → Mosquitto 2.0 on a free port with that
   TLS/ACL config (``user root`` prepended when run as root, RLIMIT_NOFILE
   raised).
3. ``xl-hub db upgrade`` + ``xl-hub run`` (SQLite; ``--postgres`` for a fresh
   PostgreSQL schema) as the ``hub`` identity of the state.
4. ``xl-sim`` with every device: heartbeats every 60 s, visits (start + end
   events) at a county rate with a dusk burst, panics.

Figures (keys carry the device count; ``_postgres`` suffix with --postgres):

* ``fleet_<n>_connect_s``: sim start → every device's retained ``online`` seen
  by a monitor subscriber (the ``commission`` identity), and
  ``fleet_<n>_hub_online_s``: → the hub's DB shows all of them online.
* ``fleet_<n>_hub_cpu_pct`` / ``_peak_pct`` / ``fleet_<n>_hub_rss_mb``: the hub
  process and its MQTT transport process (utime+stime from /proc/<pid>/stat,
  summed) over the window after all
  devices connected; the broker's CPU beside it.
* every QoS 1 message the sim sent was acknowledged, and the hub stored every
  event exactly once (events stored == events sent; unique key
  device/event/phase).
* ``offline_detect_s``: a probe device dies silently (a TCP relay between it
  and the broker stops forwarding and keeps both sockets open: no FIN, no
  DISCONNECT, like a power cut) right after it sent a heartbeat — the worst
  moment — and the clock runs until the hub's DB says ``online = false``.
  Measured with the agent's keepalive (``--keepalive``, 45 s, the default of
  ``broker.keepalive`` since it was lowered from 60 s: ``offline_detect_s``)
  and with the old 60 s for comparison (``--compare-keepalive``:
  ``offline_detect_s_keepalive60``). A third probe's
  connection is closed without DISCONNECT (process killed, socket closed by
  the kernel): ``offline_detect_closed_s``.

    .venv/bin/python bench/fleet.py [--devices 3312] [--seconds 120] [--rate 2] [--postgres]
        [--heartbeat 60] [--no-probes] [--keepalive 45] [--compare-keepalive 60] [--keep]

``--heartbeat 2`` puts one hub worker under about the message rate of a whole
province (3,312 / 2 s ≈ 1,660 heartbeats/s vs 100,000 / 60 s ≈ 1,667/s); keys
then get a ``_hb2s`` suffix. See docs/scale.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import os
import resource
import selectors
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from _common import ROOT, drop_pg, merge_results, pg_schema, print_table  # also puts the project on sys.path
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select, text

from hub.db import make_engine
from hub.db.schema import REGISTRY_TABLES, devices
from hub.db.schema_ops import events, rejections
from protocol import Health, State, encode
from protocol.codec import decode_state
from protocol.topics import health_topic, state_topic, uplink_filter
from provisioning.townships import MINQIN_TOWNSHIPS
from sim.ports import free_port, wait_port
from tests.support.wait import wait_for

BIN = Path(sys.executable).parent
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
WORK = ROOT / "var" / "bench-fleet"
PROBES = 3  # extra provisioned devices: silent death at two keepalives, closed socket
SIM_CONNECT_RATE = 300.0  # each xl-sim process schedules this many connects per second
EVENT_KINDS = ("person", "motion", "person_end", "motion_end", "panic")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- processes ------------------------------------------------------------------


class Procs:
    """Every process this bench starts, each in its own session; all stopped on exit."""

    def __init__(self) -> None:
        self.items: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], logfile: Path, **kw: Any) -> subprocess.Popen[bytes]:
        out = open(logfile, "ab")  # noqa: SIM115 - owned by the process
        p = subprocess.Popen(argv, stdout=kw.pop("stdout", out), stderr=out, start_new_session=True, **kw)
        self.items.append((name, p))
        return p

    def stop_all(self) -> None:
        for _name, p in reversed(self.items):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)  # the group of a process we started (xl-sim has workers)
        for _name, p in reversed(self.items):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)


def run(argv: list[str]) -> None:
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} … failed ({r.returncode}): {r.stderr[-2000:]}{r.stdout[-500:]}")


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


@dataclass
class CpuSample:
    t: float
    ticks: int


def with_children(pid: int) -> list[int]:
    """``pid`` and its live child processes: the hub's MQTT transport runs as one."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            pids.extend(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:
            continue  # the thread ended while we looked
    return [p for p in pids if Path(f"/proc/{p}/stat").exists()]


def cpu_ticks(pid: int) -> int:
    total = 0
    for p in with_children(pid):
        fields_ = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields_[11]) + int(fields_[12])  # utime, stime (fields 14 and 15)
    return total


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB, summed over the process and its children."""
    vals = {"VmRSS": 0.0, "VmHWM": 0.0}
    for p in with_children(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                vals[k] += int(v.split()[0]) / 1024
    return round(vals["VmRSS"], 1), round(vals["VmHWM"], 1)


def pct(a: CpuSample, b: CpuSample) -> float:
    return (b.ticks - a.ticks) / CLK_TCK / max(b.t - a.t, 1e-9) * 100


# --- provisioning -----------------------------------------------------------------


def write_csv(path: Path, households: int) -> None:
    """Same shape as bench/provision.py: 18 townships, villages of 60, groups of 10."""
    codes = sorted(MINQIN_TOWNSHIPS)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["township", "village", "household", "group", "lat", "lon", "name", "leader"])
        for i in range(households):
            town = codes[i * len(codes) // households]
            w.writerow(
                [
                    town,
                    f"{MINQIN_TOWNSHIPS[town]}第{(i // 60) % 9 + 1}村",
                    f"HH{i:06d}",
                    f"g{town}{i // 10:04d}",
                    f"{38.6 + (i % 97) / 200:.5f}",
                    f"{103.1 + (i % 89) / 150:.5f}",
                    f"户主{i}",
                    "1" if i % 10 == 0 else "",
                ]
            )


def bundle_ids(state: Path) -> list[str]:
    b = state / "bundles"
    if not b.is_dir():
        return []
    return sorted(p.name for p in b.iterdir() if (p / "tls" / "device.key").exists())


def registered(state: Path) -> int:
    db = state / "hub.sqlite3"
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM devices WHERE status='active'").fetchone()[0])
        except sqlite3.Error:
            return 0


def ensure_state(work: Path, total: int, fresh: bool) -> tuple[Path, float | None]:
    """A provisioning state with ``total`` devices; (folder, seconds spent or None when cached)."""
    state = work / f"state-{total}"
    complete = (state / "ca" / "ca.key").exists() and (state / "ca" / "clients" / "hub.key").exists()
    if complete and not fresh and len(bundle_ids(state)) == total and registered(state) == total:
        return state, None
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    t0 = time.monotonic()
    log(f"provisioning {total} devices into {state} (cached for the next run)")
    run([str(BIN / "xl-provision"), "ca", "init", "--state", str(state), "--broker-host", "hub.minqin.local"])
    write_csv(state / "county.csv", total)
    run([str(BIN / "xl-provision"), "batch", str(state / "county.csv"), "--state", str(state), "--quiet"])
    n = len(bundle_ids(state))
    if n != total or registered(state) != total:
        raise RuntimeError(f"provisioning produced {n} bundles / {registered(state)} devices, wanted {total}")
    return state, time.monotonic() - t0


# --- database -----------------------------------------------------------------


def sqlite_copy(src: Path, dst: Path) -> None:
    """The state's registry database, copied consistently (backup API, WAL-safe)."""
    with contextlib.closing(sqlite3.connect(src)) as s, contextlib.closing(sqlite3.connect(dst)) as d:
        s.backup(d)


def copy_registry(src_url: str, dst_url: str) -> None:
    """Registry rows (places, groups, households, devices) from the provisioning DB into an
    upgraded empty one: what ``xl-provision --db postgresql://…`` would have written."""
    src, dst = make_engine(src_url), make_engine(dst_url)
    try:
        with src.connect() as s, dst.begin() as d:
            for table in REGISTRY_TABLES:
                rows = [dict(r._mapping) for r in s.execute(select(table))]
                if rows:
                    d.execute(table.insert(), rows)
            if dst.dialect.name == "postgresql":
                d.execute(
                    text(
                        "SELECT setval(pg_get_serial_sequence('villages', 'id'), "
                        "(SELECT coalesce(max(id), 1) FROM villages))"
                    )
                )
    finally:
        src.dispose()
        dst.dispose()


# --- monitor and probes ---------------------------------------------------------


def tls_client(client_id: str, ca: Path, cert: Path, key: Path) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(ca), certfile=str(cert), keyfile=str(key), cert_reqs=ssl.CERT_REQUIRED)
    return c


class Monitor:
    """Read-only ``commission`` identity on ``xl/v1/+/state``: when each device's presence changed."""

    def __init__(self, state: Path, port: int) -> None:
        clients = state / "ca" / "clients"
        self.client = tls_client(
            "commission", state / "ca" / "ca.crt", clients / "commission.crt", clients / "commission.key"
        )
        self.lock = threading.Lock()
        self.first_online: dict[str, float] = {}
        self.offline_at: dict[str, float] = {}
        self.ready = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self.ready.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(uplink_filter("state"), qos=1)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        if not self.ready.wait(15):
            raise RuntimeError("monitor could not subscribe to xl/v1/+/state")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        dev = msg.topic.split("/")[2]
        try:
            st = decode_state(msg.payload).state
        except Exception:
            return
        with self.lock:
            if st == "online":
                self.first_online.setdefault(dev, now)
            else:
                self.offline_at[dev] = now

    def online_among(self, ids: set[str]) -> tuple[int, float]:
        with self.lock:
            times = [t for d, t in self.first_online.items() if d in ids]
        return len(times), max(times, default=0.0)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Relay(threading.Thread):
    """A TCP relay between one probe device and the broker. ``die("silent")`` stops forwarding
    and keeps both sockets open (a power cut: the broker hears nothing, not even a FIN);
    ``die("closed")`` closes the broker side without an MQTT DISCONNECT (a killed process)."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(daemon=True, name="probe-relay")
        self.upstream_port = upstream_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = int(self.lsock.getsockname()[1])
        self.mode: str | None = None
        self.dead = threading.Event()
        self.held: list[socket.socket] = []
        self.start()

    def run(self) -> None:
        client, _ = self.lsock.accept()
        self.lsock.close()
        up = socket.create_connection(("127.0.0.1", self.upstream_port))
        self.held = [client, up]
        peer = {client: up, up: client}
        sel = selectors.DefaultSelector()
        sel.register(client, selectors.EVENT_READ)
        sel.register(up, selectors.EVENT_READ)
        while self.mode is None:
            for key, _ in sel.select(0.02):
                if self.mode is not None:
                    break
                s: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the probe or the broker closed: pass the close on
                    self.mode = "eof"
                    for x in (client, up):
                        x.close()
                    break
                peer[s].sendall(data)
        sel.close()
        if self.mode == "closed":
            up.close()  # FIN to the broker, no DISCONNECT: the will goes out at once
        self.dead.set()

    def die(self, mode: str) -> float:
        self.mode = mode
        self.dead.wait(2)
        return time.time()

    def close(self) -> None:
        for s in self.held:
            with contextlib.suppress(OSError):
                s.close()


@dataclass
class ProbeResult:
    name: str
    keepalive: int
    mode: str
    device: str
    will_s: float | None = None  # death → the broker published the will (seen by the monitor)
    offline_s: float | None = None  # death → hub DB online = false
    hub_received_s: float | None = None  # death → the hub's receive time of the will (devices.state_changed_ms)
    error: str = ""


@dataclass
class Probe:
    name: str
    device: str
    keepalive: int
    mode: str
    result: ProbeResult = field(init=False)

    def __post_init__(self) -> None:
        self.result = ProbeResult(self.name, self.keepalive, self.mode, self.device)


def run_probe(p: Probe, state: Path, port: int, db_url: str, monitor: Monitor, timeout: float) -> None:
    """Connect like an agent (will = retained offline), get seen online by the hub, send a
    heartbeat, then die right after it: the worst case for the keepalive (1.5 × keepalive)."""
    relay = Relay(port)
    tls = state / "bundles" / p.device / "tls"
    c = tls_client(p.device, state / "ca" / "ca.crt", tls / "device.crt", tls / "device.key")
    c.will_set(state_topic(p.device), encode(State(state="offline")), qos=1, retain=True)
    connected = threading.Event()
    c.on_connect = lambda *_a: connected.set()
    engine = make_engine(db_url)
    try:
        c.connect("127.0.0.1", relay.port, keepalive=p.keepalive)
        c.loop_start()
        if not connected.wait(20):
            raise RuntimeError("probe did not connect")
        online = State(state="online", time_ms=int(time.time() * 1000), agent_version="probe", boot=1, interval_s=60)
        c.publish(state_topic(p.device), encode(online), qos=1, retain=True).wait_for_publish(10)
        deadline = time.monotonic() + 30
        while not db_online(engine, p.device):
            if time.monotonic() > deadline:
                raise RuntimeError("the hub never showed the probe online")
            time.sleep(0.25)
        hb = Health(
            time_ms=int(time.time() * 1000),
            uptime_s=10,
            agent_version="probe",
            boot=1,
            interval_s=60,
            camera="ok",
            clock="synced",
        )
        c.publish(health_topic(p.device), encode(hb), qos=0).wait_for_publish(10)
        time.sleep(0.1)  # the relay has forwarded it: the broker's last-heard time is now
        t0 = relay.die(p.mode)
        c.loop_stop()  # the probe's own paho thread ends without a DISCONNECT
        deadline = time.monotonic() + timeout
        while db_online(engine, p.device):
            if time.monotonic() > deadline:
                raise RuntimeError(f"still online {timeout:.0f} s after death")
            time.sleep(0.1)
        p.result.offline_s = round(time.time() - t0, 1)
        with engine.connect() as conn:
            changed = conn.execute(select(devices.c.state_changed_ms).where(devices.c.id == p.device)).scalar_one()
        if changed is not None:
            p.result.hub_received_s = round(changed / 1000 - t0, 1)
        with monitor.lock:
            will = monitor.offline_at.get(p.device)
        if will is not None:
            p.result.will_s = round(will - t0, 1)
    except Exception as exc:  # reported, not fatal: the fleet figures still count
        p.result.error = str(exc)
    finally:
        engine.dispose()
        relay.close()
        with contextlib.suppress(Exception):
            c.loop_stop()


def db_online(engine: Any, device: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(select(devices.c.online).where(devices.c.id == device)).scalar_one())


def db_counts(engine: Any, ids: list[str]) -> tuple[int, int, int]:
    """(events stored, online devices among ``ids``, rejections)."""
    with engine.connect() as conn:
        n_ev = int(conn.execute(select(func.count()).select_from(events)).scalar_one())
        n_on = int(
            conn.execute(
                select(func.count()).select_from(devices).where(devices.c.online.is_(True), devices.c.id.in_(ids))
            ).scalar_one()
        )
        n_rej = int(conn.execute(select(func.coalesce(func.sum(rejections.c.count), 0))).scalar_one())
    return n_ev, n_on, n_rej


# --- the run --------------------------------------------------------------------


def broker_config(state: Path, out: Path, port: int) -> Path:
    root = os.geteuid() == 0
    run(
        [
            str(BIN / "xl-provision"),
            "broker-config",
            "--state",
            str(state),
            "--out",
            str(out),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            *(["--owner", "root"] if root else []),
        ]
    )
    conf = out / "mosquitto.conf"
    body = conf.read_text()
    if root and "\nuser " not in "\n" + body:
        body = "user root\n" + body  # as root Mosquitto would drop to 'mosquitto' and lose the 0600 key
    body += (
        f"\nlog_dest file {out / 'mosquitto.log'}\nlog_type error\nlog_type warning\nlog_type notice\n"
        "log_type subscribe\n"
    )
    conf.write_text(body)
    return conf


def hub_yaml(path: Path, state: Path, db_url: str, port: int) -> None:
    clients = state / "ca" / "clients"
    path.write_text(
        "database:\n"
        f"  url: '{db_url}'\n"
        "mqtt:\n"
        "  host: 127.0.0.1\n"
        f"  port: {port}\n"
        "  client_id: hub\n"
        "  tls:\n"
        f"    ca: '{state / 'ca' / 'ca.crt'}'\n"
        f"    cert: '{clients / 'hub.crt'}'\n"
        f"    key: '{clients / 'hub.key'}'\n"
        "metrics:\n"
        "  enabled: false\n"
        "log_level: WARNING\n"
    )


def wait_while_alive(
    pred: Callable[[], object], timeout: float, what: str, alive: list[subprocess.Popen[bytes]] | None = None
) -> None:
    """``tests.support.wait.wait_for``, failing at once if one of ``alive`` exits (no point waiting out the timeout)."""

    def check() -> object:
        for p in alive or []:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: a process exited early ({p.args[0] if p.args else p.pid})")
        return pred()

    wait_for(check, timeout, what, step=0.1)


def fleet_run(a: argparse.Namespace) -> dict[str, Any]:
    work: Path = a.work
    work.mkdir(parents=True, exist_ok=True)
    n = a.devices
    state, prov_s = ensure_state(work, n + PROBES, a.fresh)
    ids = bundle_ids(state)
    sim_ids, probe_ids = ids[:n], ids[n:]  # xl-sim takes the first n bundles in sorted order
    rundir = work / f"run-{os.getpid()}"
    shutil.rmtree(rundir, ignore_errors=True)
    rundir.mkdir(parents=True)
    procs = Procs()
    pg: tuple[str, str] | None = None
    monitor: Monitor | None = None
    out: dict[str, Any] = {"provision_s": prov_s, "rundir": rundir}
    try:
        port = free_port()
        conf = broker_config(state, rundir / "broker", port)
        broker = procs.start(
            "mosquitto", [MOSQUITTO, "-c", str(conf)], rundir / "mosquitto.out", preexec_fn=raise_nofile
        )
        wait_port(port)

        if a.postgres:
            pg = pg_schema("xl_fleet_")
            db_url = pg[1]
            run([str(BIN / "xl-hub"), "db", "upgrade", "--db", db_url])
            copy_registry(f"sqlite:///{state / 'hub.sqlite3'}", db_url)
        else:
            sqlite_copy(state / "hub.sqlite3", rundir / "hub.sqlite3")
            db_url = f"sqlite:///{rundir / 'hub.sqlite3'}"
            run([str(BIN / "xl-hub"), "db", "upgrade", "--db", db_url])
        cfg = rundir / "hub.yaml"
        hub_yaml(cfg, state, db_url, port)
        hub = procs.start("xl-hub", [str(BIN / "xl-hub"), "run", "--config", str(cfg)], rundir / "hub.log")
        blog = rundir / "broker" / "mosquitto.log"
        wait_while_alive(
            lambda: blog.exists() and "$share/xlhub/" in blog.read_text(errors="replace"),
            30,
            "hub subscribed",
            [hub, broker],
        )
        monitor = Monitor(state, port)
        engine = make_engine(db_url)

        log(
            f"broker :{port} pid {broker.pid}, hub pid {hub.pid} ({'PostgreSQL' if a.postgres else 'SQLite'}); "
            f"starting xl-sim with {n} devices"
        )
        allow = n / SIM_CONNECT_RATE + (30 if a.connect_allow is None else a.connect_allow)
        duration = allow + 5 + a.seconds + 5
        dusk_at = allow + max(0.0, a.seconds / 2 - 30)
        sim_out = rundir / "sim.json"
        t_sim = time.time()
        sim = procs.start(
            "xl-sim",
            [
                str(BIN / "xl-sim"),
                "--devices",
                str(n),
                "--state",
                str(state),
                "--broker",
                f"127.0.0.1:{port}",
                "--rate",
                str(a.rate),
                "--heartbeat",
                str(a.heartbeat),
                "--duration",
                f"{duration:.0f}",
                "--dusk-at",
                f"{dusk_at:.0f}",
                "--churn-per-min",
                "0",
                "--procs",
                str(a.procs),
                "--json",
            ],
            rundir / "sim.log",
            stdout=open(sim_out, "wb"),  # noqa: SIM115 - the child owns it for its lifetime
        )

        sim_set = set(sim_ids)
        wait_while_alive(
            lambda: monitor.online_among(sim_set)[0] >= n, allow + 60, "all devices connected", [hub, broker, sim]
        )
        connect_s = monitor.online_among(sim_set)[1] - t_sim
        out["connect_s"] = round(connect_s, 1)
        log(
            f"all {n} sessions up {connect_s:.1f} s after xl-sim started (its schedule alone is "
            f"{n / SIM_CONNECT_RATE / a.procs:.1f} s)"
        )
        wait_while_alive(lambda: db_counts(engine, sim_ids)[1] >= n, 60, "hub shows all online", [hub])
        out["hub_online_s"] = round(time.time() - t_sim, 1)

        probes = (
            []
            if a.no_probes
            else [
                Probe("keepalive_compare", probe_ids[0], a.compare_keepalive, "silent"),
                Probe("keepalive_agent", probe_ids[1], a.keepalive, "silent"),
                Probe("closed", probe_ids[2], a.keepalive, "closed"),
            ]
        )
        threads = [
            threading.Thread(
                target=run_probe, args=(p, state, port, db_url, monitor, 1.5 * p.keepalive + 60), daemon=True
            )
            for p in probes
        ]
        for t in threads:
            t.start()

        time.sleep(5)  # settle: the connect storm's last handshakes are out of the window
        samples = [(CpuSample(time.time(), cpu_ticks(hub.pid)), CpuSample(time.time(), cpu_ticks(broker.pid)))]
        window_end = min(samples[0][0].t + a.seconds, t_sim + duration - 3)
        while time.time() < window_end - 0.5 and sim.poll() is None:
            time.sleep(min(5.0, max(0.1, window_end - time.time())))
            samples.append((CpuSample(time.time(), cpu_ticks(hub.pid)), CpuSample(time.time(), cpu_ticks(broker.pid))))
        out["window_s"] = round(samples[-1][0].t - samples[0][0].t, 1)
        out["hub_cpu_pct"] = round(pct(samples[0][0], samples[-1][0]), 1)
        out["broker_cpu_pct"] = round(pct(samples[0][1], samples[-1][1]), 1)
        out["hub_cpu_peak_pct"] = round(max((pct(x[0], y[0]) for x, y in itertools.pairwise(samples)), default=0.0), 1)
        out["hub_rss_mb"], out["hub_hwm_mb"] = rss_mb(hub.pid)
        out["broker_rss_mb"], _ = rss_mb(broker.pid)
        log(
            f"window {out['window_s']} s: hub {out['hub_cpu_pct']} % CPU (peak 5 s {out['hub_cpu_peak_pct']} %), "
            f"RSS {out['hub_rss_mb']} MB; broker {out['broker_cpu_pct']} %"
        )

        sim.wait(duration + 120)
        rep = json.loads(sim_out.read_text())
        out["sim"] = rep
        sent, acked = rep["sent"], rep["acked"]
        qos1_sent = sum(v for k, v in sent.items() if k != "health")
        qos1_acked = sum(v for k, v in acked.items() if k != "health")
        ev_sent = sum(sent.get(k, 0) for k in EVENT_KINDS)
        out.update(
            qos1_sent=qos1_sent, qos1_acked=qos1_acked, events_sent=ev_sent, heartbeats_sent=sent.get("health", 0)
        )
        # Wait for the hub to store the tail (it commits, then acks the broker).
        last, stable_since = -1, time.monotonic()
        while True:
            stored, _, _ = db_counts(engine, sim_ids)
            if stored >= ev_sent or time.monotonic() - stable_since > 15:
                break
            if stored != last:
                last, stable_since = stored, time.monotonic()
            time.sleep(0.2)
        with engine.connect() as conn:
            distinct = conn.execute(
                select(func.count()).select_from(
                    select(events.c.device_id, events.c.event_id, events.c.phase).distinct().subquery()
                )
            ).scalar_one()
        stored, _, rej = db_counts(engine, sim_ids)
        out.update(events_stored=stored, events_distinct=int(distinct), rejections=rej)

        for t in threads:
            t.join(max(1.0, 1.5 * max(a.keepalive, a.compare_keepalive) + 90))
        out["probes"] = [p.result for p in probes]
        engine.dispose()
        return out
    finally:
        if monitor is not None:
            monitor.close()
        procs.stop_all()
        if pg is not None:
            drop_pg(pg[0])
        if not a.keep:
            shutil.rmtree(rundir, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=3312)
    ap.add_argument("--seconds", type=float, default=120.0, help="measured window after all devices connected")
    ap.add_argument("--rate", type=float, default=2.0, help="visits per second across the county (dusk: 5x)")
    ap.add_argument(
        "--heartbeat",
        type=float,
        default=60.0,
        help="seconds between a device's heartbeats (60 is the real one; less = a bigger fleet's load)",
    )
    ap.add_argument("--no-probes", action="store_true", help="skip the offline-detection probes")
    ap.add_argument("--procs", type=int, default=2, help="xl-sim worker processes")
    ap.add_argument("--postgres", action="store_true", help="hub on a fresh PostgreSQL schema instead of SQLite")
    ap.add_argument(
        "--keepalive",
        type=int,
        default=45,
        help="the agent's broker.keepalive (default 45, the agent's default): offline_detect_s",
    )
    ap.add_argument(
        "--compare-keepalive",
        type=int,
        default=60,
        help="a second silent probe for comparison (default 60, the agent's earlier default)",
    )
    ap.add_argument("--fresh", action="store_true", help="re-provision even if the cached state is complete")
    ap.add_argument("--keep", action="store_true", help="keep the run folder (logs, DB) under var/bench-fleet/")
    ap.add_argument("--no-results", action="store_true", help="print only; do not touch bench/results.json")
    ap.add_argument("--work", type=Path, default=WORK, help="cache and run folder (default var/bench-fleet)")
    ap.add_argument(
        "--connect-allow",
        type=float,
        default=None,
        help="seconds the sim schedule leaves for connecting beyond its ramp (default 30)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    t_all = time.monotonic()
    try:
        r = fleet_run(a)
    except KeyboardInterrupt:
        print("interrupted: processes stopped", file=sys.stderr)
        return 130
    n = a.devices
    sfx = ("_postgres" if a.postgres else "") + ("" if a.heartbeat == 60 else f"_hb{a.heartbeat:g}s")
    k = f"fleet_{n}"
    probes: list[ProbeResult] = r["probes"]
    by = {p.name: p for p in probes}
    ok_acked = r["qos1_sent"] == r["qos1_acked"]
    ok_stored = r["events_stored"] == r["events_sent"] == r["events_distinct"]
    figures: dict[str, Any] = {
        f"{k}_connect_s{sfx}": r["connect_s"],
        f"{k}_hub_online_s{sfx}": r["hub_online_s"],
        f"{k}_hub_cpu_pct{sfx}": r["hub_cpu_pct"],
        f"{k}_hub_cpu_peak_pct{sfx}": r["hub_cpu_peak_pct"],
        f"{k}_hub_rss_mb{sfx}": r["hub_rss_mb"],
        f"{k}_broker_cpu_pct{sfx}": r["broker_cpu_pct"],
        f"{k}_broker_rss_mb{sfx}": r["broker_rss_mb"],
        f"{k}_events_sent{sfx}": r["events_sent"],
        f"{k}_events_stored{sfx}": r["events_stored"],
        f"{k}_qos1_unacked{sfx}": r["qos1_sent"] - r["qos1_acked"],
    }
    rec, agent, closed = by.get("keepalive_agent"), by.get("keepalive_compare"), by.get("closed")
    if rec is not None and rec.offline_s is not None:
        figures[f"offline_detect_s{sfx}"] = rec.offline_s
        figures[f"offline_detect_keepalive_s{sfx}"] = rec.keepalive
    if agent is not None and agent.offline_s is not None:
        figures[f"offline_detect_s_keepalive{agent.keepalive}{sfx}"] = agent.offline_s
    if closed is not None and closed.offline_s is not None:
        figures[f"offline_detect_closed_s{sfx}"] = closed.offline_s
    rows: list[tuple[str, Any, str]] = [
        (
            f"{k}_connect_s{sfx}",
            r["connect_s"],
            f"xl-sim start → all {n} retained 'online' at the broker (sim schedule "
            f"{n / SIM_CONNECT_RATE / a.procs:.1f} s)",
        ),
        (f"{k}_hub_online_s{sfx}", r["hub_online_s"], "xl-sim start → hub DB shows all online"),
        (
            f"{k}_hub_cpu_pct{sfx}",
            r["hub_cpu_pct"],
            f"% of one core over {r['window_s']:.0f} s after all connected (incl. dusk burst)",
        ),
        (f"{k}_hub_cpu_peak_pct{sfx}", r["hub_cpu_peak_pct"], "busiest 5 s"),
        (f"{k}_hub_rss_mb{sfx}", r["hub_rss_mb"], f"peak {r['hub_hwm_mb']} MB"),
        (f"{k}_broker_cpu_pct{sfx}", r["broker_cpu_pct"], f"Mosquitto, RSS {r['broker_rss_mb']} MB"),
        (
            f"{k}_events_sent{sfx}",
            r["events_sent"],
            f"heartbeats {r['heartbeats_sent']:,} (QoS 0); ≈ {n / a.heartbeat + 2 * a.rate:,.0f} msg/s to the hub "
            f"outside dusk, ≈ {n / a.heartbeat + 10 * a.rate:,.0f} in it",
        ),
        (
            f"{k}_events_stored{sfx}",
            r["events_stored"],
            f"{'== sent, each once' if ok_stored else 'MISMATCH'} (distinct {r['events_distinct']}, "
            f"rejections {r['rejections']})",
        ),
        (
            f"{k}_qos1_unacked{sfx}",
            r["qos1_sent"] - r["qos1_acked"],
            f"of {r['qos1_sent']:,} QoS 1 sent ({'all acked' if ok_acked else 'NOT all acked'})",
        ),
    ]
    for p in probes:
        key = {
            "keepalive_compare": f"offline_detect_s_keepalive{p.keepalive}",
            "keepalive_agent": "offline_detect_s",
            "closed": "offline_detect_closed_s",
        }[p.name] + sfx
        what = (
            f"silent death, keepalive {p.keepalive} s (will due ≤ {1.5 * p.keepalive:.1f} s)"
            if p.mode == "silent"
            else "socket closed without DISCONNECT"
        )
        if p.name == "keepalive_agent":
            what += " — the agent's setting"
        note = p.error or (
            f"{what}; will at the broker after {p.will_s} s, received by the hub after "
            f"{p.hub_received_s} s; target <= 90"
        )
        rows.append((key, p.offline_s if p.offline_s is not None else "failed", note))
    if r["provision_s"] is not None:
        rows.append(("provision (first run only)", round(r["provision_s"], 1), "s, now cached in var/bench-fleet/"))
    print_table(
        f"county fleet: {n} TLS devices → Mosquitto → xl-hub ({'PostgreSQL' if a.postgres else 'SQLite'}), "
        f"{a.rate}/s visits, {a.heartbeat:g} s heartbeats; run took {time.monotonic() - t_all:.0f} s",
        rows,
    )
    if not a.no_results:
        merge_results(figures)
    failed = [p for p in probes if p.error]
    return 0 if ok_acked and ok_stored and not failed else 1


if __name__ == "__main__":
    sys.exit(main())

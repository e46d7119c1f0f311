"""Bytes a device puts on its metered 4G card per day, by kind, and how fast the hub sees it go silent (issue 19).

Real processes end to end: ``xl-provision`` makes the county, ``mosquitto``
runs its generated TLS/dynamic-security config, ``xl-hub run`` (SQLite) reads
the uplinks and sends receipts, and ``xl-agent run`` connects through a
metering proxy (tests/support/tls_meter.py) with the settings provisioning
writes, only the camera swapped for a synthetic scene. A read-only
``commission`` client on the broker sees each uplink message, so the proxy's
TLS records can be told apart: keepalives, heartbeats, events, snapshots, the
hub's receipts and the connection's set-up.

Three runs side by side, each with its own broker, hub and agent:
  day     outside armed hours, an empty yard
  night   in armed hours, an empty yard; then the link is cut once (the
          reconnect's cost), then it goes silent without a FIN (a 4G outage)
          and the hub's database is watched until the device shows offline
  visits  in armed hours, a person walking through every 20 s

A day is then 16 h of the day rate plus 8 h of the night rate (the county's
22:00-06:00 armed hours) plus the reconnects the agent itself makes; a day with
20 visits adds 20 times the measured cost of one visit.

    python bench/link_bytes.py [--minutes 10] [--visit-minutes 5] [--label NAME]

Merges ``link_<label>_*`` into bench/results.json (label ``default``).
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import _common
import paho.mqtt.client as mqtt
import yaml
from _common import merge_results, print_table
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, select

from agent.config import BrokerConfig, HealthSection
from hub.db.schema import devices
from sim.ports import free_port
from tests.support.broker import run_broker
from tests.support.tls_meter import APPDATA, Connection, MeteringProxy, Record, chunk_cost, open_close_cost
from xlconfig import default_of

BIN = Path(sys.executable).parent
DAY_H, NIGHT_H = 16, 8
UPLINK = ("event", "snap", "health", "state", "ack")


def hours_around(now: bool) -> dict[str, str]:
    """Armed hours (Asia/Shanghai) that hold now (``now``) or stay clear of the next hours."""
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = (
        (local - timedelta(hours=1), local + timedelta(hours=3))
        if now
        else (
            local + timedelta(hours=8),
            local + timedelta(hours=9),
        )
    )
    return {"armed_from": start.strftime("%H:%M"), "armed_to": end.strftime("%H:%M")}


def run(*argv: object) -> None:
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{argv[0]} {argv[1]} failed: {r.stderr[-1500:]}{r.stdout[-500:]}")


@dataclass
class Seen:
    t: float
    channel: str
    topic_len: int
    payload_len: int
    qos: int
    kind: str = ""  # "kind:phase" of an event


@dataclass
class Monitor:
    """The read-only commission identity on every uplink channel of one device."""

    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    client: Any = None

    def start(self, state: Path, port: int, device: str) -> None:
        clients = state / "ca" / "clients"
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="commission", protocol=mqtt.MQTTv5)
        c.tls_set(str(state / "ca" / "ca.crt"), str(clients / "commission.crt"), str(clients / "commission.key"))
        ready = threading.Event()
        c.on_connect = lambda cl, *_: cl.subscribe([(f"xl/v1/{device}/{ch}", 1) for ch in UPLINK])
        c.on_subscribe = lambda *_: ready.set()
        c.on_message = self._on_message
        c.connect("localhost", port, keepalive=60)
        c.loop_start()
        if not ready.wait(15):
            raise RuntimeError("the commission monitor could not subscribe")
        self.client = c

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            return  # the retained state from before this run
        channel = msg.topic.rsplit("/", 1)[1]
        kind = ""
        if channel == "event":
            doc = json.loads(bytes(msg.payload))
            kind = f"{doc.get('k', '')}:{doc.get('p', '')}"
        with self.lock:
            self.seen.append(Seen(time.monotonic(), channel, len(msg.topic), len(msg.payload), msg.qos, kind))

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()


def _varint_len(n: int) -> int:
    return 1 if n < 128 else 2 if n < 16384 else 3 if n < 2_097_152 else 4


def publish_lengths(s: Seen) -> set[int]:
    """MQTT 5 PUBLISH packet sizes this message may have had on the device's link (topic in full or aliased)."""
    out = set()
    for topic, props in ((s.topic_len, 0), (s.topic_len, 3), (0, 3)):
        rest = 2 + topic + (2 if s.qos else 0) + _varint_len(props) + props + s.payload_len
        out.add(1 + _varint_len(rest) + rest)
    return out


def classify(conns: list[Connection], seen: list[Seen]) -> dict[int, str]:
    """id(record) → kind for every record of ``conns``."""
    kinds: dict[int, str] = {}
    pool = sorted(seen, key=lambda s: s.t)
    used: set[int] = set()
    for conn in conns:
        online = next(
            (s.t for s in pool if s.channel == "state" and conn.opened <= s.t and (conn.closed or 1e18) >= s.t), None
        )
        setup_until = (online + 0.5) if online is not None else conn.opened + 3.0
        for rec in conn.records:
            kinds[id(rec)] = _kind(rec, pool, used, setup_until)
    return kinds


def _kind(rec: Record, pool: list[Seen], used: set[int], setup_until: float) -> str:
    if rec.kind != APPDATA:
        return "setup"
    size = rec.plaintext
    if rec.up:
        for i, s in enumerate(pool):
            if i in used or s.t < rec.t - 0.5 or s.t > rec.t + 3.0:
                continue
            if size in publish_lengths(s):
                used.add(i)
                if s.channel == "state" and rec.t <= setup_until:
                    return "setup"
                return {"health": "heartbeat", "snap": "snapshot"}.get(s.channel, s.channel)
    if rec.t <= setup_until:
        return "setup"
    if size == 2:
        return "keepalive"
    if size <= 8:
        return "ack" if not rec.up else "receipt"  # PUBACKs: of the device's messages / of the hub's receipts
    return "receipt" if not rec.up else "other"


def chunk_shares(conn: Connection, kinds: dict[int, str]) -> list[list[tuple[str, int]]]:
    """For each chunk, (kind, bytes) of the TLS records it carries: several records often share a chunk."""
    spans: dict[bool, list[tuple[int, int, str]]] = {True: [], False: []}  # (start, end, kind) in the stream
    offset = {True: 0, False: 0}
    for rec in conn.records:
        spans[rec.up].append((offset[rec.up], offset[rec.up] + rec.size, kinds[id(rec)]))
        offset[rec.up] += rec.size
    starts = {up: [a for a, _, _ in spans[up]] for up in (True, False)}
    out = []
    pos = {True: 0, False: 0}
    for ch in conn.chunks:
        lo, hi = pos[ch.up], pos[ch.up] + ch.n
        pos[ch.up] = hi
        i = max(0, bisect.bisect_right(starts[ch.up], lo) - 1)
        share: list[tuple[str, int]] = []
        for a, b, kind in spans[ch.up][i:]:
            if a >= hi:
                break
            if (n := min(b, hi) - max(a, lo)) > 0:
                share.append((kind, n))
        covered = sum(n for _, n in share)
        if covered < ch.n:  # a record still incomplete at the end
            share.append(("setup" if not share else share[-1][0], ch.n - covered))
        out.append(share)
    return out


def breakdown(conns: list[Connection], seen: list[Seen], since: float, until: float) -> dict[str, dict[str, int]]:
    """Per kind: TCP payload bytes up and down, estimated bytes with IP/TCP headers and ACKs, TLS records.

    A chunk's headers and ACKs are split between the records it carries in proportion to their bytes."""
    kinds = classify(conns, seen)
    out: dict[str, dict[str, float]] = {}

    def row(kind: str) -> dict[str, float]:
        return out.setdefault(kind, {"up": 0, "down": 0, "wire": 0, "count": 0})

    for conn in conns:
        for i, (ch, share) in enumerate(zip(conn.chunks, chunk_shares(conn, kinds), strict=True)):
            if not since <= ch.t < until:
                continue
            cost = chunk_cost(conn, i)
            for kind, n in share:
                row(kind)["up" if ch.up else "down"] += n
                row(kind)["wire"] += cost * n / ch.n
        if opened := open_close_cost(conn, since, until):
            row("setup")["wire"] += opened
        for rec in conn.records:
            if since <= rec.t < until:
                row(kinds[id(rec)])["count"] += 1
    return {k: {f: round(v) for f, v in r.items()} for k, r in out.items()}


@dataclass
class Run:
    name: str
    armed: bool
    source: str
    seconds: float
    reconnect: bool = False
    silence: bool = False
    out: dict[str, Any] = field(default_factory=dict)


def agent_yaml(state: Path, device: str, home: Path, port: int, source: str) -> Path:
    bundle = state / "bundles" / device
    doc = yaml.safe_load((bundle / "agent.yaml").read_text(encoding="utf-8"))
    tls = bundle / "tls"
    doc["broker"].update(
        url=f"mqtts://localhost:{port}",
        ca=str(tls / "ca.crt"),
        cert=str(tls / "device.crt"),
        key=str(tls / "device.key"),
    )
    doc["state_dir"] = str(home / "state")
    doc["camera"] = {"source": source}
    doc["vision"] = {"detect": {"num_threads": 1}}
    doc["gpio"] = {"pin_factory": "mock"}
    doc.pop("update", None)  # updates come only on the hub's command; no update server here
    path = home / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def run_one(r: Run, keep: Path | None) -> None:
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"xl-link-{r.name}-")))
        state, port = work / "state", free_port()
        xp = BIN / "xl-provision"
        run(xp, "ca", "init", "--state", state, "--broker-host", "localhost", "--broker-port", port)
        hours = hours_around(r.armed)
        run(xp, "device", "add", "--state", state, "--township", "泉山镇", "--village", "和平村", "--household", "HH01",
            "--group", "g-heping", "--armed-from", hours["armed_from"], "--armed-to", hours["armed_to"])  # fmt: skip
        run(xp, "broker-config", "--state", state, "--out", state / "broker", "--port", port, "--bind", "127.0.0.1")
        (device,) = [b.name for b in (state / "bundles").iterdir()]
        hub_cfg = work / "hub.yaml"
        clients = state / "ca" / "clients"
        hub_doc = {
            "database": {"url": f"sqlite:///{state / 'hub.sqlite3'}"},
            "mqtt": {"host": "localhost", "port": port, "client_id": "hub", "tls": {
                "ca": str(state / "ca" / "ca.crt"), "cert": str(clients / "hub.crt"), "key": str(clients / "hub.key")}},
            "health": {"check_interval_s": 1.0},
            "metrics": {"enabled": False},
        }  # fmt: skip
        hub_cfg.write_text(yaml.safe_dump(hub_doc, allow_unicode=True), encoding="utf-8")
        run(BIN / "xl-hub", "db", "upgrade", "--config", hub_cfg)
        (work / "broker").mkdir()
        broker = stack.enter_context(
            run_broker((state / "broker" / "mosquitto.conf").read_text(), port=port, workdir=work / "broker")
        )
        hub_log = open(work / "hub.log", "wb")  # noqa: SIM115 - closed by the stack
        stack.callback(hub_log.close)
        hub = subprocess.Popen([BIN / "xl-hub", "run", "--config", hub_cfg], stdout=hub_log, stderr=subprocess.STDOUT)
        stack.callback(_stop, hub)
        time.sleep(3)
        monitor = Monitor()
        monitor.start(state, broker.port, device)
        stack.callback(monitor.close)
        proxy = MeteringProxy(broker.port).start()
        stack.callback(proxy.close)
        home = work / "device"
        home.mkdir()
        cfg = agent_yaml(state, device, home, proxy.port, r.source)
        agent_log = open(home / "agent.log", "wb")  # noqa: SIM115 - closed by the stack
        stack.callback(agent_log.close)
        env = {**os.environ, "PYTHONPATH": str(_common.ROOT)}
        agent = subprocess.Popen(
            [BIN / "xl-agent", "run", "--config", cfg], stdout=agent_log, stderr=subprocess.STDOUT, cwd=home, env=env
        )
        stack.callback(_stop, agent)
        _wait(lambda: proxy.snapshot() and any(s.channel == "state" for s in monitor.seen), 60, "agent online", agent)
        time.sleep(10)  # start-up (the first heartbeat, the model) is not the steady state
        t0 = time.monotonic()
        time.sleep(r.seconds)
        t1 = time.monotonic()
        r.out["window_s"] = t1 - t0
        r.out["window"] = breakdown(proxy.snapshot(), list(monitor.seen), t0, t1)
        r.out["person_visits"] = sum(1 for s in monitor.seen if s.kind == "person:start" and t0 <= s.t < t1)
        # Full reports come every health.interval_s (30 min): a 10-minute window may hold none, so a
        # heartbeat's cost is measured over the whole run and the day counts them by the interval.
        whole = breakdown(proxy.snapshot(), list(monitor.seen), 0.0, t1).get("heartbeat") or {}
        n = max(1, whole.get("count", 0))
        r.out["heartbeat_cost"] = {f: _field(whole, f) / n if whole else 0.0 for f in ("wire", "payload")}
        r.out["events"] = sorted({s.kind for s in monitor.seen if s.channel == "event"})
        r.out["connections"] = len(proxy.snapshot())
        if r.out["connections"] != 1:  # a quiet link that reconnects on its own is a fault, not a figure
            raise RuntimeError(f"{r.name}: {r.out['connections']} connections in the window; see {home / 'agent.log'}")
        first = proxy.snapshot()[0]
        r.out["first_setup"] = breakdown([first], list(monitor.seen), first.opened - 1, first.opened + 5)
        if r.reconnect:
            before = len(proxy.snapshot())
            cut_at = time.monotonic()
            proxy.drop()
            _wait(lambda: len(proxy.snapshot()) > before, 90, "reconnected", agent)
            time.sleep(8)
            new = proxy.snapshot()[before:]
            r.out["reconnect"] = breakdown(new, list(monitor.seen), cut_at, time.monotonic())
        if r.silence:
            engine = create_engine(f"sqlite:///{state / 'hub.sqlite3'}")
            stack.callback(engine.dispose)
            last = max(c.t for conn in proxy.snapshot() for c in conn.chunks if c.up)
            proxy.freeze()
            frozen_at = time.monotonic()

            def offline() -> bool:
                with engine.connect() as conn:
                    return conn.execute(select(devices.c.online).where(devices.c.id == device)).scalar() is False

            _wait(offline, 1200, "the hub marks the device offline", agent)
            r.out["offline_detect_s"] = time.monotonic() - last
            r.out["offline_after_freeze_s"] = time.monotonic() - frozen_at
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
            for f in (home / "agent.log", work / "hub.log"):
                (keep / f"{r.name}-{f.name}").write_bytes(f.read_bytes())


def _stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()


def _wait(pred: Any, timeout: float, what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: xl-agent exited {proc.returncode}")
        if pred():
            return
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for: {what}")


def total(rows: dict[str, dict[str, int]], key: str) -> int:
    return sum(_field(v, key) for v in rows.values())


def _field(row: dict[str, int], field: str) -> int:
    """A breakdown row's figure; "payload" is TCP payload both ways."""
    return row.get("up", 0) + row.get("down", 0) if field == "payload" else row.get(field, 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="the quiet day and night windows")
    ap.add_argument("--visit-minutes", type=float, default=5.0)
    ap.add_argument("--label", default="default", help="results key: link_<label>_*")
    ap.add_argument("--keep-logs", type=Path, default=None)
    a = ap.parse_args()
    q = a.minutes * 60
    runs = [
        Run("day", False, "synthetic:quiet?seconds=600", q),
        Run("night", True, "synthetic:quiet?seconds=600", q, reconnect=True, silence=True),
        Run("visits", True, "synthetic:walkthrough", a.visit_minutes * 60),
    ]
    errors: list[BaseException] = []

    def guarded(r: Run) -> None:
        try:
            run_one(r, a.keep_logs)
        except BaseException as exc:  # reported after the other runs end
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(r,)) for r in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    day, night, visits = runs
    reconnect = night.out["reconnect"]
    # The agent reconnects on purpose when armed hours start and end, if its two keepalives differ;
    # the ticket from a connection that lasted hours has expired (2 h), so those are full handshakes.
    switches = 2 if default_of(BrokerConfig, "keepalive") != default_of(BrokerConfig, "keepalive_idle") else 0
    hi = int(default_of(HealthSection, "interval_s"))

    def setup_cost(rows: dict[str, dict[str, int]], field: str) -> int:
        """What a connection's set-up costs: TLS, CONNECT, SUBSCRIBE, the online state."""
        return sum(_field(v, field) for k, v in rows.items() if k in ("setup", "state", "other"))

    def per_day(field: str) -> float:
        """16 h of the day window's rate and 8 h of the night's, heartbeats by the interval, and the switches."""

        def rate(r: Run) -> float:
            spent = sum(_field(v, field) for k, v in r.out["window"].items() if k != "heartbeat")
            return spent / float(r.out["window_s"])

        heartbeats = 86_400 / hi * float(night.out["heartbeat_cost"][field])
        return (
            (rate(day) * DAY_H + rate(night) * NIGHT_H) * 3600
            + heartbeats
            + switches * setup_cost(night.out["first_setup"], field)
        )

    visits_seen = visits.out["person_visits"]
    visit_extra = total(visits.out["window"], "wire") - total(night.out["window"], "wire") * (
        visits.out["window_s"] / night.out["window_s"]
    )
    visit_wire = visit_extra / max(1, visits_seen)
    quiet_day = per_day("wire")
    figures: dict[str, Any] = {
        "quiet_day_wire_kb": round(quiet_day / 1000, 1),
        "quiet_day_payload_kb": round(per_day("payload") / 1000, 1),
        "visit_wire_kb": round(visit_wire / 1000, 2),
        "day_20_visits_wire_kb": round((quiet_day + 20 * visit_wire) / 1000, 1),
        "reconnect_wire_b": setup_cost(reconnect, "wire"),
        "reconnect_payload_b": setup_cost(reconnect, "payload"),
        "full_connect_wire_b": setup_cost(night.out["first_setup"], "wire"),
        "full_connect_payload_b": setup_cost(night.out["first_setup"], "payload"),
        "keepalive_switches_per_day": switches,
        "heartbeat_wire_b": round(night.out["heartbeat_cost"]["wire"]),
        "heartbeats_per_day": round(86_400 / hi),
        "offline_detect_s": round(night.out["offline_detect_s"], 1),
        "visits_seen": visits_seen,
    }
    summary = dict(figures)
    for r in runs:
        for kind, row in sorted(r.out["window"].items()):
            figures[f"{r.name}_10min_{kind}_wire_b"] = round(row["wire"] * 600 / r.out["window_s"])
    print(f"link bytes, {a.minutes:g}-minute windows ({a.label}); headers estimated for a 4G MSS of 1,400 B")
    for r in runs:
        rows = [
            (k, v["wire"], f"{v['count']} records, payload {v['up']:,} up / {v['down']:,} down")
            for k, v in sorted(r.out["window"].items())
        ]
        print_table(
            f"{r.name}: {r.out['window_s']:.0f} s, {r.out['connections']} connection(s)", rows or [("-", 0, "")]
        )
    print_table(
        "reconnect (the link cut once, night run)",
        [(k, v["wire"], f"payload {v['up']:,} up / {v['down']:,} down") for k, v in sorted(reconnect.items())],
    )
    print_table("per day", [(k, v, "") for k, v in summary.items()])
    print(f"\nevents seen in the visits run: {visits.out['events']}")
    merge_results({f"link_{a.label}_{k}": v for k, v in figures.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The county the ingest bench runs against: registry, stored history, the hub
as ``xl-hub run`` starts it, and the event stream devices send."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import _common  # noqa: F401  (puts the project on sys.path)
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hub.config import parse_config
from hub.db import make_engine, upgrade
from hub.db.schema_ops import events
from hub.registry import Registry
from hub.service import Hub
from protocol.codec import encode
from protocol.ids import make_device_id
from protocol.messages import Event
from protocol.topics import event_topic
from sim.ports import free_port

DEVICES = 3312
GROUP_SIZE = 10


def now_ms() -> int:
    return int(time.time() * 1000)


def build_fleet(url: str) -> dict[str, list[str]]:
    engine = make_engine(url)
    upgrade(engine)
    reg = Registry(engine)
    groups: dict[str, list[str]] = {}
    with engine.begin() as conn:
        reg.ensure_township(conn, "01", "泉山镇")
        vid = reg.ensure_village(conn, "01", "和平村")
        for i in range(DEVICES):
            gid = f"g{i // GROUP_SIZE:04d}"
            if gid not in groups:
                reg.ensure_group(conn, gid, vid)
                groups[gid] = []
            hh = f"HH{i:05d}"
            reg.ensure_household(conn, hh, village_id=vid, group_id=gid, name=f"户{i}")
            dev = str(make_device_id(1, i + 1))
            reg.add_device(conn, dev, hh)
            groups[gid].append(dev)
    engine.dispose()
    return groups


def prefill_history(url: str, devices: list[str], rows: int) -> None:
    """Events already stored, as after days of county traffic.

    An empty table flatters ingest: while the unique index is small, one
    batch's events share index pages. Past about 50 events a device each new
    event lands on its device's own leaf, and the cost per event stops
    growing (measured: 26 µs a message on an empty table, 80 by 200,000 rows
    with SQLite's default cache). 400,000 rows is past that point.
    """
    engine = make_engine(url)
    start = now_ms() - 7 * 86_400_000
    step = 7 * 86_400_000 // (rows // len(devices) + 1)
    with engine.begin() as conn:
        chunk: list[dict[str, Any]] = []
        for i in range(rows):
            k, d = divmod(i, len(devices))
            t = start + k * step
            chunk.append(
                {
                    "device_id": devices[d],
                    "event_id": k,
                    "phase": "start",
                    "kind": "motion",
                    "score": 40,
                    "zone": "gate",
                    "has_snapshot": False,
                    "device_time_ms": t,
                    "received_ms": t,
                    "time_ms": t,
                    "time_trusted": True,
                    "household_id": f"HH{d:05d}",
                }
            )
            if len(chunk) == 20_000:
                conn.execute(events.insert(), chunk)
                chunk = []
        if chunk:
            conn.execute(events.insert(), chunk)
    engine.dispose()


def hub_for(url: str, port: int, client_id: str) -> Hub:
    """The hub ``xl-hub run`` starts, with the shipped ingest settings (batch size,
    receive window) and a webhook forwarder. The platform is unreachable, as in
    an outage: every person event gets an outbox row, and delivery (one HTTP
    request an item, on its own thread) stays out of the ingest figure."""
    cfg = parse_config(
        {
            "database": {"url": url},
            "mqtt": {"host": "127.0.0.1", "port": port, "client_id": client_id},
            "metrics": {"enabled": False},
            "forward": {
                "webhook": {
                    "url": f"http://127.0.0.1:{free_port()}/hook",
                    "secret": "bench-secret-0123456789",
                    "event_kinds": ["person", "panic", "tamper"],
                }
            },
        }
    )
    return Hub.from_config(cfg)


def publisher(port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(1000)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


_ROUND = [0]
RECEIPTS = os.environ.get("XL_BENCH_RECEIPTS") == "1"


def publish_events(port: int, devices: list[str], n: int) -> None:
    """``n`` event phases as visits send them: start then end, half of the
    visits a person (forwarded to the platform), half motion only; each with
    its outbox number, so the drain includes the hub's receipts."""
    c = publisher(port)
    infos = []
    t = now_ms()
    _ROUND[0] += 1  # each round is a new boot: fresh event ids, so nothing is a duplicate
    for i in range(n):
        visit, end = divmod(i, 2)
        dev = devices[visit % len(devices)]
        person = visit % 2 == 1
        # Person scores stay under the alert threshold: alerts are measured under county load below.
        payload = encode(
            Event(
                event_id=(_ROUND[0] << 32) | visit,
                kind="person" if person else "motion",
                phase="end" if end else "start",
                time_ms=t,
                score=45 if person else 30,
                bbox=(250, 100, 500, 900) if person else None,
                zone="gate",
                duration_s=12 if end else None,
                # With XL_BENCH_RECEIPTS=1 an outbox number, as today's agent sends, so the hub
                # also receipts each batch. Off by default: with it, on this bench's unlimited
                # broker, the drain stalled at exactly half in 3 of 5 runs of 20,000 (open).
                seq=_ROUND[0] * n + i + 1 if RECEIPTS else None,
            )
        )
        infos.append(c.publish(event_topic(dev), payload, qos=1))
    for info in infos:
        info.wait_for_publish(60)
    c.disconnect()
    c.loop_stop()

"""Helpers for the console tests: a small county seeded through the real
registry and ingest code paths, a console served by uvicorn on a free port,
and a JPEG made from pixels."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import simplejpeg
from sqlalchemy import Engine

from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.console.app import ConsoleContext, ConsoleSettings
from hub.console.auth import Throttle, add_user
from hub.console.server import ConsoleServer
from hub.core.directory import Directory
from hub.core.forwarding import MemoryForwardSink
from hub.core.inbound import Inbound
from hub.core.items import EventItem
from hub.db import upgrade
from hub.forward import outbox
from hub.ingest.batch import BatchProcessor
from hub.registry import Registry
from protocol.codec import Snapshot, encode, encode_snapshot
from protocol.ids import make_device_id
from protocol.messages import Ack, Event, Health, State
from protocol.topics import ack_topic, event_topic, health_topic, snap_topic, state_topic
from sim.ports import free_port, wait_port

PASSWORD = "correct horse 9"


def now_ms() -> int:
    return int(time.time() * 1000)


def jpeg(width: int = 320, height: int = 180) -> bytes:
    """A real JPEG: a dusk-coloured yard with a lighter figure where the box will be."""
    img = np.zeros((height, width, 3), dtype=np.uint8)
    img[:, :] = (40, 60, 90)
    img[height // 2 :, :] = (90, 80, 60)
    img[int(height * 0.2) : int(height * 0.9), int(width * 0.35) : int(width * 0.5)] = (220, 200, 180)
    return bytes(simplejpeg.encode_jpeg(img, quality=80, colorspace="RGB"))


@dataclass
class County:
    engine: Engine
    proc: BatchProcessor
    devices: dict[str, list[str]] = field(default_factory=dict)  # group → device ids
    mid: int = 0

    def send(self, topic: str, payload: bytes) -> None:
        """One message through validation, storage, health, alerts: what ingest does per batch."""
        self.mid += 1
        self.proc.process([Inbound(topic, payload, self.mid, 1, now_ms())])

    def health(self, dev: str, **kw: object) -> None:
        base: dict[str, object] = dict(
            time_ms=now_ms(),
            agent_version="0.1.0",
            interval_s=60,
            cpu_temp_c=52.5,
            throttled=0,
            camera="ok",
            camera_fps=10.0,
            inference_ms_p50=38.0,
            outbox_depth=0,
            outbox_dropped=0,
            armed=False,
            clock="synced",
            load1=0.4,
            mem_avail_mb=600,
            disk_free_mb=9000,
        )
        base.update(kw)
        self.send(health_topic(dev), encode(Health(**base)))  # type: ignore[arg-type]

    def state(self, dev: str, st: str) -> None:
        self.send(state_topic(dev), encode(State(state=st, interval_s=60)))

    def event(
        self,
        dev: str,
        event_id: int,
        kind: str,
        phase: str = "start",
        *,
        snapshot: bool = False,
        bbox: tuple[int, int, int, int] | None = None,
        score: int = 87,
    ) -> None:
        self.send(
            event_topic(dev),
            encode(
                Event(
                    event_id=event_id,
                    kind=kind,
                    phase=phase,
                    time_ms=now_ms(),
                    score=score,
                    bbox=bbox,
                    has_snapshot=snapshot,
                    count=1 if kind == "person" else None,
                )
            ),
        )
        if snapshot:
            self.send(
                snap_topic(dev),
                encode_snapshot(
                    Snapshot(event_id=event_id, phase=phase, time_ms=now_ms(), width=320, height=180, jpeg=jpeg())
                ),
            )

    def ack_command(self, dev: str, command_id: str, ok: bool = True) -> None:
        self.send(ack_topic(dev), encode(Ack(of="cmd", ref_id=command_id, ok=ok, time_ms=now_ms())))

    def ack_alert(self, dev: str, alert_id: str) -> None:
        self.send(ack_topic(dev), encode(Ack(of="alert", ref_id=alert_id, ok=True, time_ms=now_ms())))


def seed_county(engine: Engine) -> County:
    """Two townships, three villages, three groups of three households, one camera each;
    heartbeats, a panic alert answered by a neighbour, a camera-error alarm, events with
    pictures, and a forward queue with one dead letter."""
    upgrade(engine)
    reg = Registry(engine)
    layout = [
        ("01", "泉山镇", "和平村", "g0101-01"),
        ("01", "泉山镇", "红光村", "g0101-02"),
        ("02", "薛百镇", "双茨村", "g0201-01"),
    ]
    county_devices: dict[str, list[str]] = {}
    serial = 1
    with engine.begin() as conn:
        for code, town, village, gid in layout:
            reg.ensure_township(conn, code, town)
            vid = reg.ensure_village(conn, code, village)
            reg.ensure_group(conn, gid, vid, f"{village}一组")
            county_devices[gid] = []
            for h in range(3):
                hh = f"HH{code}{serial:04d}"
                reg.ensure_household(
                    conn,
                    hh,
                    village_id=vid,
                    group_id=gid,
                    name=f"{'张王李'[h]}家{serial}",
                    armed_from="00:00",
                    armed_to="23:59",
                )
                dev = str(make_device_id(int(code), serial))
                reg.add_device(conn, dev, hh)
                county_devices[gid].append(dev)
                serial += 1
            reg.set_group_leader(conn, gid, f"HH{code}{serial - 3:04d}")
    sink = MemoryForwardSink()
    directory = Directory(engine, ttl_s=0.1)
    proc = BatchProcessor(engine, directory, AlertEngine(directory, AlertConfig(), sink), sink, HealthConfig())
    county = County(engine, proc, county_devices)
    all_devs = [d for ds in county_devices.values() for d in ds]
    for i, dev in enumerate(all_devs):
        county.state(dev, "online")
        county.health(dev, cpu_temp_c=50.0 + i, armed=i % 2 == 0)
    g1 = county_devices["g0101-01"]
    county.health(g1[2], camera="error", error="camera timeout", cpu_temp_c=78.0, throttled=0x50005)
    county.state(county_devices["g0201-01"][2], "offline")
    county.event(g1[0], (1 << 32) + 1, "person", snapshot=True, bbox=(350, 200, 500, 900))
    county.event(g1[0], (1 << 32) + 1, "person", "end")
    county.event(g1[1], (1 << 32) + 2, "motion", score=12)
    county.event(county_devices["g0101-02"][0], (1 << 32) + 3, "panic", score=100)
    from hub.db.schema_ops import alerts

    with engine.connect() as conn:
        alert_id = conn.execute(alerts.select().where(alerts.c.kind == "panic")).first().id  # type: ignore[union-attr]
    county.ack_alert(county_devices["g0101-02"][1], alert_id)
    _forward_queue(engine, all_devs[0])
    return county


def _forward_queue(engine: Engine, dev: str) -> None:
    outbox.ensure_sinks(engine, ["viid", "webhook"])
    now = now_ms()
    with engine.begin() as conn:
        for i in range(3):
            item = EventItem(
                device_id=dev,
                event_id=100 + i,
                phase="start",
                kind="person",
                time_ms=now,
                score=90,
                bbox=None,
                snapshot=None,
                household_id=None,
                clock_unsynced=False,
            )
            outbox.enqueue_many(conn, "webhook", [item], now - 60_000)
        head = outbox.head(conn, "webhook")
        assert head is not None
        outbox.mark_dead(conn, int(head.id), now, "HTTP 400: rejected by platform")


@contextmanager
def serve_console(engine: Engine, publisher: object = None, *, throttle: Throttle | None = None) -> Iterator[str]:
    settings = ConsoleSettings(port=free_port(), refresh_s=2, throttle=throttle or Throttle())
    server = ConsoleServer(ConsoleContext(engine, settings, publisher))  # type: ignore[arg-type]
    server.start()
    wait_port(settings.port)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.stop()


def make_users(engine: Engine) -> None:
    for name, role in (("viewer1", "viewer"), ("op1", "operator"), ("admin1", "admin")):
        add_user(engine, name, role, PASSWORD)

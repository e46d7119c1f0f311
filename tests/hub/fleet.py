"""Helpers for hub tests: a small registered fleet, hub configs and real paho clients."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from hub.config import HubConfig, parse_config
from hub.db import upgrade
from hub.registry import Registry
from protocol.ids import make_device_id


def device(township: int, serial: int) -> str:
    return str(make_device_id(township, serial))


def make_fleet(engine: Engine, groups: int = 2, per_group: int = 3, *, armed_from: str = "22:00",
               armed_to: str = "06:00") -> dict[str, list[str]]:
    """Register ``groups`` groups of ``per_group`` households with one device each.
    Returns group id → device ids (in household order)."""
    upgrade(engine)
    reg = Registry(engine)
    out: dict[str, list[str]] = {}
    serial = 1
    with engine.begin() as conn:
        reg.ensure_township(conn, "01", "泉山镇")
        vid = reg.ensure_village(conn, "01", "和平村")
        for g in range(groups):
            gid = f"g{g:03d}"
            reg.ensure_group(conn, gid, vid, f"第{g}组")
            out[gid] = []
            for h in range(per_group):
                hh = f"HH{g:03d}{h:02d}"
                reg.ensure_household(conn, hh, village_id=vid, group_id=gid, name=f"户{g}-{h}",
                                     armed_from=armed_from, armed_to=armed_to)
                dev = device(1, serial)
                serial += 1
                reg.add_device(conn, dev, hh)
                out[gid].append(dev)
            reg.set_group_leader(conn, gid, f"HH{g:03d}00")
    return out


def hub_config(db_url: str, port: int, **sections: dict[str, object]) -> HubConfig:
    raw: dict[str, object] = {
        "database": {"url": db_url},
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": f"hub-{uuid.uuid4().hex[:8]}"},
        "ingest": {"batch_ms": 10},
        "health": {"check_interval_s": 0.5},
        "metrics": {"enabled": False},
    }
    for name, values in sections.items():
        merged = dict(raw.get(name, {}))  # type: ignore[call-overload]
        merged.update(values)
        raw[name] = merged
    return parse_config(raw)


def with_client_id(cfg: HubConfig, client_id: str) -> HubConfig:
    return replace(cfg, mqtt=replace(cfg.mqtt, client_id=client_id))


class Peer:
    """A real paho client standing in for a device or a test observer."""

    def __init__(self, port: int, client_id: str | None = None, *, will: tuple[str, bytes] | None = None
                 ) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or uuid.uuid4().hex,
                                  protocol=mqtt.MQTTv5)
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


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")

"""The reliability rig: a registered fleet in the hub database, its county PKI
and a TLS Mosquitto with persistence; ledgers that count what was sent,
stored, forwarded and dropped; the real hub and the agent's real link on it.

The ``rig`` fixture that builds one is in tests/reliability/conftest.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy import Engine, func, select

from agent.link import Link, LinkSettings
from agent.outbox import Outbox
from hub.db.schema_ops import events
from hub.service import Hub
from protocol.messages import Event
from tests.support.broker import Broker
from tests.support.county_pki import CountyPki
from tests.support.hub_config import hub_config

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Rig:
    """A registered fleet, its certificates and a running TLS broker with persistence."""

    engine: Engine
    db_url: str
    fleet: dict[str, list[str]]
    pki: CountyPki
    broker: Broker
    tmp: Path

    @property
    def devices(self) -> list[str]:
        return [d for devs in self.fleet.values() for d in devs]

    def group_of(self, device_id: str) -> str:
        return next(g for g, devs in self.fleet.items() if device_id in devs)

    def hub_tls(self) -> dict[str, str]:
        p = self.pki.base
        return {"ca": str(p.ca), "cert": str(p.hub_cert), "key": str(p.hub_key)}


@dataclass
class Ledger:
    """What the devices sent and what the system says it did with it."""

    sent: set[tuple[str, int, str]] = field(default_factory=set)
    dropped_on_device: int = 0

    def stored(self, engine: Engine) -> tuple[int, int]:
        """(rows, distinct (device, event id, phase) keys) in the hub's events table."""
        with engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(events)).scalar_one()
            keys = conn.execute(select(events.c.device_id, events.c.event_id, events.c.phase)).all()
        return int(rows), len({tuple(k) for k in keys})

    def stored_keys(self, engine: Engine) -> set[tuple[str, int, str]]:
        with engine.connect() as conn:
            return {
                (r.device_id, int(r.event_id), r.phase)
                for r in conn.execute(select(events.c.device_id, events.c.event_id, events.c.phase))
            }

    def assert_nothing_lost(self, engine: Engine) -> None:
        rows, distinct = self.stored(engine)
        keys = self.stored_keys(engine)
        lost = self.sent - keys
        assert not lost, f"{len(lost)} of {len(self.sent)} lost, e.g. {sorted(lost)[:3]}"
        assert rows == distinct, f"{rows - distinct} duplicate rows in storage"
        assert keys <= self.sent, f"stored {len(keys - self.sent)} events nobody sent"


def spawn_hub(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``xl-hub run --config FILE`` as a real process, output to ``log``."""
    out = open(log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "run", "--config", str(config)],
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
    )


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def now_ms() -> int:
    return int(time.time() * 1000)


def event(seq: int, kind: str = "motion", phase: str = "start", t: int | None = None, boot: int = 1) -> Event:
    return Event(
        event_id=(boot << 32) + seq, kind=kind, phase=phase, time_ms=t or now_ms(), score=100 if kind == "panic" else 60
    )


def link_for(rig: Rig, device: str, box: Outbox, **kw: object) -> Link:
    cert, key = rig.pki.devices[device]
    settings = LinkSettings(
        device_id=device,
        group=rig.group_of(device),
        host="127.0.0.1",
        port=rig.broker.port,
        ca=rig.pki.base.ca,
        cert=cert,
        key=key,
        keepalive=10,
        max_inflight=10,
        backoff_base_s=0.1,
        backoff_cap_s=0.5,
        boot=1,
        health_interval_s=60,
        **kw,  # type: ignore[arg-type]
    )
    return Link(settings, box)


@contextmanager
def running_hub(rig: Rig, client_id: str = "hub-rel", **sections: dict[str, object]) -> Iterator[Hub]:
    """The real hub (ingest worker, watcher) in this process, over TLS, with a persistent session."""
    mqtt = {"tls": rig.hub_tls(), "client_id": client_id, **sections.pop("mqtt", {})}
    cfg = hub_config(rig.db_url, rig.broker.port, mqtt=mqtt, **sections)
    hub = Hub(cfg, engine=rig.engine)
    hub.start()
    try:
        assert hub.worker.subscribed.wait(10), "hub never subscribed"
        yield hub
    finally:
        hub.stop()


def hub_yaml(rig: Rig, path: Path, client_id: str = "hub-kill", **extra: object) -> Path:
    doc: dict[str, object] = {
        "database": {"url": rig.db_url},
        "mqtt": {"host": "127.0.0.1", "port": rig.broker.port, "client_id": client_id, "tls": rig.hub_tls()},
        # Small batches: many commits, so a kill lands between some of them.
        "ingest": {"batch_max": 5, "batch_ms": 5},
        "health": {"check_interval_s": 0.5},
        "metrics": {"enabled": False},
        "log_level": "INFO",
    }
    doc.update(extra)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path

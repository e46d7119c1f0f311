"""The reliability rig: one county CA, a TLS Mosquitto with persistence, a
registered fleet in the hub database, and ledgers that count what was sent,
stored, forwarded and dropped.

Built from the shared kits (tests/support, tests/hub/fleet.py) rather than a
copy of them; what is new here is a CA that issues several device
certificates (``make_pki`` makes a fresh CA per device) and the accounting.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from hub.db import make_engine
from hub.db.schema_ops import events
from provisioning import pki
from tests.hub.fleet import make_fleet
from tests.support.broker import Broker, run_broker
from tests.support.tls import Pki, tls_config

ROOT = Path(__file__).resolve().parents[2]
T_BASE = 1_764_138_000_000


@dataclass
class CountyPki:
    """One CA, the broker's and the hub's certificates, and a certificate per device."""

    base: Pki
    devices: dict[str, tuple[Path, Path]]  # device id -> (cert, key)


def county_pki(where: Path, device_ids: list[str]) -> CountyPki:
    where.mkdir(parents=True, exist_ok=True)
    ca = pki.CA.create("Reliability Test County CA")
    pki.write_public(where / "ca.crt", pki.cert_pem(ca.cert))

    def issue(name: str, cn: str, server: list[str] | None = None) -> tuple[Path, Path]:
        key = pki.new_key()
        cert = ca.issue(key.public_key(), cn, unit=name, days=30, server_names=server)
        pki.write_private(where / f"{name}.key", pki.key_pem(key))
        pki.write_public(where / f"{name}.crt", pki.cert_pem(cert))
        return where / f"{name}.crt", where / f"{name}.key"

    server = issue("server", "broker", ["127.0.0.1", "localhost"])
    hub = issue("hub", "hub")
    devices = {dev: issue(f"dev-{dev}", dev) for dev in device_ids}
    first = devices[device_ids[0]]
    base = Pki(where, where / "ca.crt", first[0], first[1], hub[0], hub[1], server[0], server[1])
    return CountyPki(base, devices)


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


@pytest.fixture
def rig(tmp_path: Path, sqlite_url: str) -> Iterator[Rig]:
    engine = make_engine(sqlite_url)
    fleet = make_fleet(engine, groups=2, per_group=2)
    ids = [d for devs in fleet.values() for d in devs]
    cp = county_pki(tmp_path / "pki", ids)
    with run_broker(tls_config(cp.base)) as broker:
        yield Rig(engine, sqlite_url, fleet, cp, broker, tmp_path)
    engine.dispose()


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
            return {(r.device_id, int(r.event_id), r.phase)
                    for r in conn.execute(select(events.c.device_id, events.c.event_id, events.c.phase))}

    def assert_nothing_lost(self, engine: Engine) -> None:
        rows, distinct = self.stored(engine)
        keys = self.stored_keys(engine)
        lost = self.sent - keys
        assert not lost, f"{len(lost)} of {len(self.sent)} lost, e.g. {sorted(lost)[:3]}"
        assert rows == distinct, f"{rows - distinct} duplicate rows in storage"
        assert keys <= self.sent, f"stored {len(keys - self.sent)} events nobody sent"


def wait_for(check: Callable[[], bool], timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def spawn_hub(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``xl-hub run --config FILE`` as a real process, output to ``log``."""
    out = open(log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "hub.cli", "run", "--config", str(config)], cwd=ROOT,
                            stdout=out, stderr=subprocess.STDOUT, env=env)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)

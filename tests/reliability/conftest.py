"""The ``rig`` fixture: a registered fleet, its county PKI and a TLS Mosquitto
with persistence (tests/support/reliability_rig.py holds the rig and its helpers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.db import make_engine
from tests.support.broker import run_broker
from tests.support.county_pki import county_pki
from tests.support.hub_db import make_fleet
from tests.support.reliability_rig import Rig
from tests.support.tls import tls_config


@pytest.fixture
def rig(tmp_path: Path, sqlite_url: str) -> Iterator[Rig]:
    engine = make_engine(sqlite_url)
    fleet = make_fleet(engine, groups=2, per_group=2)
    ids = [d for devs in fleet.values() for d in devs]
    cp = county_pki(tmp_path / "pki", ids)
    with run_broker(tls_config(cp.base)) as broker:
        yield Rig(engine, sqlite_url, fleet, cp, broker, tmp_path)
    engine.dispose()

"""A stolen device certificate must not stop ingest for the county: strings a database
cannot store (NUL, which PostgreSQL's text refuses, and lone surrogates, which are no
UTF-8 at all, so neither SQLite nor PostgreSQL can take them) in an event's zone names
(``zn``, issue 20), its ``z`` or an ack's error are rejected with the message, and the
rest of the batch is stored. Before, the batch's transaction failed and the worker
retried it for ever, holding every other household's events behind it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import MemoryForwardSink
from hub.core.inbound import Inbound
from hub.db import make_engine
from hub.db.schema_ops import events
from hub.ingest.batch import BatchProcessor
from protocol.messages import Ack, Event
from protocol.topics import ack_topic, event_topic
from tests.support.hub_db import make_fleet, not_armed_now


@pytest.fixture
def setup(db_url: str) -> Iterator[tuple[Engine, list[str], BatchProcessor]]:
    engine = make_engine(db_url)
    devs = make_fleet(engine, groups=1, per_group=2, **not_armed_now())["g000"]
    sink = MemoryForwardSink()
    directory = Directory(engine, ttl_s=60)
    yield (
        engine,
        devs,
        BatchProcessor(engine, directory, AlertEngine(directory, AlertConfig(), sink), sink, HealthConfig()),
    )
    engine.dispose()


def raw(topic: str, wire: dict[str, Any]) -> Inbound:
    # json.dumps escapes what protocol.codec.encode would refuse to produce: a hostile device's bytes.
    return Inbound(topic, json.dumps(wire).encode(), 1, 1, int(time.time() * 1000))


HOSTILE = ["a\x00b", "a\ud800b", "\udfff"]


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("key", ["zn", "z"])
def test_an_unstorable_zone_name_is_rejected_and_the_batch_goes_on(
    setup: tuple[Engine, list[str], BatchProcessor], key: str, text: str
) -> None:
    engine, (bad, good), proc = setup
    t = int(time.time() * 1000)
    wire = Event(event_id=7, kind="person", phase="start", time_ms=t, score=80).to_wire()
    wire[key] = [text] if key == "zn" else text
    result = proc.process(
        [raw(event_topic(bad), wire), raw(event_topic(good), Event(1, "person", "start", t, 80).to_wire())]
    )
    assert [r.reason for r in result.rejected] == ["bad_field"]
    with engine.connect() as conn:
        stored = conn.execute(select(events.c.device_id, func.count()).group_by(events.c.device_id)).all()
    assert [tuple(r) for r in stored] == [(good, 1)]


@pytest.mark.parametrize("text", HOSTILE)
def test_an_unstorable_ack_error_is_rejected(setup: tuple[Engine, list[str], BatchProcessor], text: str) -> None:
    _engine, (bad, _good), proc = setup
    wire = Ack(of="cmd", ref_id="c1", ok=False, error="x", time_ms=int(time.time() * 1000)).to_wire()
    wire["err"] = text
    result = proc.process([raw(ack_topic(bad), wire)])
    assert [r.reason for r in result.rejected] == ["bad_field"]

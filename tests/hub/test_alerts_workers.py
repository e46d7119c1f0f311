"""Two hub workers on one shared subscription (hub/README.md) split a device's messages
between them, and a device flushing its outbox after a 4G blip sends a visit's phases
back to back. A zoned visit (issue 20) whose start was already in the gate has two phases
that may alert: the start, and an update naming zones (which alerts when no start is
stored). Worker A holds the update, worker B the start, in two transactions at once
(their event rows have different keys, so nothing else makes one wait): each must see
the other's alert, or the visit alerts twice. On PostgreSQL the alert decisions of one household are serialised
(an advisory lock until commit); SQLite's single writer already serialises them."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select, update

from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import MemoryForwardSink
from hub.core.inbound import Inbound
from hub.core.items import AlertItem, ForwardItem
from hub.db import make_engine
from hub.db.schema import households
from hub.db.schema_ops import alerts
from hub.ingest.batch import BatchProcessor
from protocol.codec import encode
from protocol.messages import Event
from protocol.topics import event_topic
from tests.support.hub_db import make_fleet

VISIT = 12884901931


class HoldingSink(MemoryForwardSink):
    """Worker A's sink: holds A's transaction open right after it raised an alert."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = threading.Event()
        self.release = threading.Event()

    def hand_over(self, conn: Connection, items: Sequence[ForwardItem]) -> None:
        super().hand_over(conn, items)
        if any(isinstance(i, AlertItem) for i in items):
            self.inside.set()
            self.release.wait(10)


def person(phase: str, dt_ms: int, **kw: object) -> Event:
    t = int(time.time() * 1000) + dt_ms
    return Event(event_id=VISIT, kind="person", phase=phase, time_ms=t, score=85, count=1, **kw)  # type: ignore[arg-type]


def test_a_visit_split_between_two_workers_alerts_once(pg_url: str) -> None:
    engine = make_engine(pg_url)
    (dev,) = make_fleet(engine, groups=1, per_group=1)["g000"]
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    with engine.begin() as conn:
        conn.execute(
            update(households).values(
                armed_from=(local - timedelta(hours=1)).strftime("%H:%M"),
                armed_to=(local + timedelta(hours=1)).strftime("%H:%M"),
            )
        )
    config = AlertConfig(person_score_min=60, debounce_minutes=0)

    def worker(sink: MemoryForwardSink) -> BatchProcessor:
        directory = Directory(engine, ttl_s=0.0)
        return BatchProcessor(engine, directory, AlertEngine(directory, config, sink), sink, HealthConfig())

    held = HoldingSink()
    a, b = worker(held), worker(MemoryForwardSink())
    raised: dict[str, int] = {}

    def run(name: str, proc: BatchProcessor, *events: Event) -> None:
        batch = [Inbound(event_topic(dev), encode(e), 1, 1, int(time.time() * 1000)) for e in events]
        raised[name] = len(proc.process(batch).publications)

    # The burst follows the device's reconnect: both workers have just written its presence
    # row (state is unshared), so for a few seconds neither writes it again (SightingFilter),
    # and no row lock on the device makes the two transactions wait for each other.
    for proc in (a, b):
        earlier = Event(event_id=VISIT - 1, kind="motion", phase="start", time_ms=int(time.time() * 1000), score=5)
        proc.process([Inbound(event_topic(dev), encode(earlier), 1, 1, int(time.time() * 1000))])
    gate = person("update", 3000, zones=("road", "gate"))
    ta = threading.Thread(target=run, args=("a", a, gate))
    tb = threading.Thread(target=run, args=("b", b, person("start", 0, zones=("gate",))))
    try:
        ta.start()
        assert held.inside.wait(10), "worker A never raised its alert"
        tb.start()
        tb.join(1.0)  # B runs to its end now, or waits for A's commit
        held.release.set()
        ta.join(10)
        tb.join(10)
        assert raised == {"a": 1, "b": 0}
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(alerts)).scalar() == 1
    finally:
        held.release.set()
        engine.dispose()

"""Offline while armed: the grace, the broker-wide disconnect, and both kept
across a hub restart — the real batch processor and watcher on SQLite and
PostgreSQL, with simulated receive times (no sleeps)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, select

from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import MemoryForwardSink
from hub.core.inbound import Inbound
from hub.db import make_engine
from hub.db.schema_ops import alarms
from hub.health.offline import BROKER, BROKER_DISCONNECT, OFFLINE_ARMED
from hub.health.watcher import Watcher
from hub.ingest.batch import BatchProcessor
from hub.metrics import HubMetrics
from protocol.codec import encode
from protocol.messages import Health, State
from protocol.topics import health_topic, state_topic
from tests.support.hub_db import make_fleet

S = 1000  # ms
CONFIG = HealthConfig()  # the defaults: grace 30 s, 10 s window, half the fleet, at least 10


class HubParts:
    """What one hub process holds: a fresh one stands for a restarted hub."""

    def __init__(self, engine: Engine, config: HealthConfig = CONFIG) -> None:
        sink = MemoryForwardSink()
        directory = Directory(engine, ttl_s=0.0)
        alerts = AlertEngine(directory, AlertConfig(), sink)
        self.proc = BatchProcessor(engine, directory, alerts, sink, config)
        self.watcher = Watcher(engine, directory, alerts, config, HubMetrics(), sink, lambda _p: None)

    def state(self, at_ms: int, devs: list[str], st: str) -> None:
        self.proc.process([Inbound(state_topic(d), encode(State(state=st)), 0, 1, at_ms) for d in devs])

    def check(self, at_ms: int) -> None:
        self.watcher.check(at_ms)


@pytest.fixture
def county(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    # armed all day (from == to), so the rule does not depend on when the test runs
    fleet = make_fleet(engine, groups=2, per_group=6, armed_from="00:00", armed_to="00:00")
    devs = [d for g in fleet.values() for d in g]
    yield engine, devs
    engine.dispose()


def open_alarms(engine: Engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return {(r.device_id, r.kind) for r in conn.execute(select(alarms).where(alarms.c.cleared_ms.is_(None)))}


def offline_alarms(engine: Engine) -> list[tuple[str, int, int | None]]:
    with engine.connect() as conn:
        return [
            (r.device_id, int(r.raised_ms), r.cleared_ms)
            for r in conn.execute(select(alarms).where(alarms.c.kind == OFFLINE_ARMED).order_by(alarms.c.id))
        ]


def test_an_offline_alarm_waits_out_the_grace_and_survives_a_hub_restart(county) -> None:  # type: ignore[no-untyped-def]
    engine, devs = county
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.state(t, devs, "online")
    gone, blip = devs[0], devs[1]
    hub.state(t + 1 * S, [gone], "offline")  # the will: it stays away
    hub.state(t + 2 * S, [blip], "offline")  # an agent restart: back 20 s later
    hub.state(t + 22 * S, [blip], "online")
    assert open_alarms(engine) == set(), "no alarm before the grace (it used to be raised with the will)"
    hub.check(t + 30 * S)  # 29 s after the will
    assert open_alarms(engine) == set()
    restarted = HubParts(engine)  # the hub restarts during the grace: nothing in memory carries over
    restarted.check(t + 31 * S)
    assert offline_alarms(engine) == [(gone, t + 31 * S, None)]
    restarted.check(t + 60 * S)
    assert len(offline_alarms(engine)) == 1, "raised once"
    restarted.state(t + 70 * S, [gone], "online")
    assert offline_alarms(engine) == [(gone, t + 31 * S, t + 70 * S)]


def test_a_broker_wide_disconnect_is_one_alarm_and_stragglers_count_from_its_return(county) -> None:  # type: ignore[no-untyped-def]
    engine, devs = county
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.state(t, devs, "online")
    dropped, unaffected = devs[:11], devs[11]
    # Mosquitto stopping: every will at once, here over two batches 2 s apart
    hub.state(t + 100 * S, dropped[:6], "offline")
    hub.state(t + 102 * S, dropped[6:], "offline")
    with engine.connect() as conn:
        (row,) = conn.execute(select(alarms).where(alarms.c.kind == BROKER_DISCONNECT)).all()
    assert (row.device_id, row.raised_ms, row.cleared_ms) == (BROKER, t + 100 * S, None)
    assert "11 of 12 devices went offline within 10 s" in row.detail
    hub.check(t + 140 * S)  # past every grace, but the broker is not back: still the one alarm
    assert open_alarms(engine) == {(BROKER, BROKER_DISCONNECT)}
    assert hub.watcher.metrics.broker_outage._value.get() == 1
    assert hub.watcher.metrics.open_alarms._value.get() == 1

    restarted = HubParts(engine)  # a hub restart during the outage remembers it (it is a stored alarm)
    stays_away, late = dropped[0], dropped[1]
    # The broker is back, and 9 of 11 with it (the unaffected device's state
    # refreshes its last-seen time, or the missed-heartbeat rule would expire it).
    restarted.state(t + 150 * S, [*dropped[2:], unaffected], "online")
    restarted.check(t + 151 * S)
    with engine.connect() as conn:
        assert conn.execute(select(alarms.c.cleared_ms).where(alarms.c.id == row.id)).scalar_one() == t + 151 * S
    assert restarted.watcher.metrics.broker_outage._value.get() == 0
    restarted.state(t + 170 * S, [late], "online")  # slow to reconnect, but within the grace of the return
    restarted.check(t + 180 * S)  # 29 s after the return
    assert open_alarms(engine) == set()
    restarted.check(t + 181 * S)  # the grace counted from the broker's return, not from the will
    assert [a[:2] for a in offline_alarms(engine)] == [(stays_away, t + 181 * S)]
    assert unaffected not in {d for d, _ in open_alarms(engine)}

    # After the outage a device going offline on its own has its own grace again.
    restarted.state(t + 200 * S, [unaffected], "offline")
    restarted.check(t + 229 * S)
    assert (unaffected, OFFLINE_ARMED) not in open_alarms(engine)
    restarted.check(t + 230 * S)
    assert (unaffected, OFFLINE_ARMED) in open_alarms(engine)


def test_a_few_devices_dropping_together_are_not_the_broker(county) -> None:  # type: ignore[no-untyped-def]
    engine, devs = county
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.state(t, devs, "online")
    hub.state(t + S, devs[:7], "offline")  # most of a 12-device fleet, but under broker_min_devices (10)
    hub.check(t + 31 * S)
    assert open_alarms(engine) == {(d, OFFLINE_ARMED) for d in devs[:7]}
    # A small county lowers the minimum; then it takes most of the online devices.
    hub2 = HubParts(engine, HealthConfig(broker_min_devices=3))
    hub2.state(t + 40 * S, devs[:7], "online")
    hub2.state(t + 41 * S, devs[7:10], "offline")
    assert (BROKER, BROKER_DISCONNECT) not in open_alarms(engine), "3 of 12 is not most of them"
    hub2.state(t + 42 * S, devs[10:] + devs[:4], "offline")  # 9 of 12 within 10 s
    assert (BROKER, BROKER_DISCONNECT) in open_alarms(engine)


def test_every_heartbeat_stopping_at_once_is_one_broker_alarm(county) -> None:  # type: ignore[no-untyped-def]
    """A hub cut off from the broker hears no will: the missed-heartbeat rule marks everyone offline at once."""
    engine, devs = county
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    beat = encode(Health(time_ms=t, uptime_s=100, interval_s=60))
    hub.proc.process([Inbound(health_topic(d), beat, 0, 1, t) for d in devs])
    hub.check(t + 181 * S)  # three missed 60 s heartbeats
    hub.check(t + 240 * S)
    assert open_alarms(engine) == {(BROKER, BROKER_DISCONNECT)}
    assert hub.watcher.metrics.devices.labels("offline")._value.get() == 12


def test_wills_delivered_with_the_returns_in_one_batch_still_count(county) -> None:  # type: ignore[no-untyped-def]
    """After a restart the broker hands the hub's session the queued wills and the new onlines together."""
    engine, devs = county
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.state(t, devs, "online")
    queued = [Inbound(state_topic(d), encode(State(state="offline")), 0, 1, t + 60 * S) for d in devs[:11]]
    queued += [Inbound(state_topic(d), encode(State(state="online")), 0, 1, t + 60 * S) for d in devs[:11]]
    hub.proc.process(queued)
    assert open_alarms(engine) == {(BROKER, BROKER_DISCONNECT)}
    hub.check(t + 61 * S)  # everyone is back: the outage is over at once
    hub.check(t + 100 * S)
    assert open_alarms(engine) == set() and offline_alarms(engine) == []

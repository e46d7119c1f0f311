"""Issue 21, operator alarms: recovery notices, flapping, maintenance windows
and snoozes — the real batch processor and watcher on SQLite and PostgreSQL,
with simulated receive times (no sleeps)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import Engine, select

from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import MemoryForwardSink
from hub.core.inbound import Inbound
from hub.db import make_engine
from hub.db.schema_ops import alarms
from hub.health.flapping import FLAPPING
from hub.health.offline import BROKER, BROKER_DISCONNECT, OFFLINE_ARMED
from hub.health.tables import alarm_notices
from hub.health.watcher import Watcher
from hub.ingest.batch import BatchProcessor
from hub.maintenance import service as mnt
from hub.maintenance.snooze import snooze_alarm, snoozed
from hub.metrics import HubMetrics
from protocol.codec import encode
from protocol.messages import Health, State
from protocol.topics import health_topic, state_topic
from tests.support.hub_db import make_fleet

S = 1000  # ms
MIN = 60 * S
# Grace 30 s as by default; flapping at 3 downs in 10 min, cleared after 15 min unchanged.
CONFIG = HealthConfig(flap_count=3, flap_window_s=600.0, flap_stable_s=900.0)


class HubParts:
    def __init__(self, engine: Engine, config: HealthConfig = CONFIG) -> None:
        sink = MemoryForwardSink()
        directory = Directory(engine, ttl_s=0.0)
        alerts = AlertEngine(directory, AlertConfig(), sink)
        self.proc = BatchProcessor(engine, directory, alerts, sink, config)
        self.metrics = HubMetrics()
        self.watcher = Watcher(engine, directory, alerts, config, self.metrics, sink, lambda _p: None)
        self.steady: list[str] = []  # devices kept alive by a heartbeat before each check, unless away
        self.away: set[str] = set()

    def online(self, at_ms: int, fleet: dict[str, list[str]], *_flappers: str) -> None:
        self.steady = [d for g in fleet.values() for d in g]
        self.state(at_ms, self.steady, "online")

    def state(self, at_ms: int, devs: list[str], st: str) -> None:
        self.proc.process([Inbound(state_topic(d), encode(State(state=st)), 0, 1, at_ms) for d in devs])
        self.away = self.away - set(devs) if st == "online" else self.away | set(devs)

    def beat(self, at_ms: int, dev: str, **kw: Any) -> None:
        self.proc.process([Inbound(health_topic(dev), encode(Health(time_ms=at_ms, **kw)), 0, 1, at_ms)])

    def check(self, at_ms: int) -> None:
        # Without heartbeats the rest of the fleet would expire after 3 minutes, all at once: the broker.
        beat = encode(Health(time_ms=at_ms, interval_s=60))
        self.proc.process([Inbound(health_topic(d), beat, 0, 1, at_ms) for d in self.steady if d not in self.away])
        self.watcher.check(at_ms)

    def flap(self, at_ms: int, dev: str, down_s: float) -> int:
        """Offline, a check while away, back, a check: returns the time it came back."""
        self.state(at_ms, [dev], "offline")
        away = at_ms + int(down_s * S)
        self.check(away - 1)
        self.state(away, [dev], "online")
        self.check(away + 1)
        return away

    def sample(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, labels or None)
        return 0.0 if value is None else value


@pytest.fixture
def county(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    # armed all day (from == to), so the offline rule does not depend on when the test runs
    fleet = make_fleet(engine, groups=2, per_group=6, armed_from="00:00", armed_to="00:00")
    yield engine, fleet
    engine.dispose()


def rows(engine: Engine, kind: str) -> list[tuple[str, int | None]]:
    with engine.connect() as conn:
        return [
            (r.device_id, r.cleared_ms)
            for r in conn.execute(select(alarms).where(alarms.c.kind == kind).order_by(alarms.c.id))
        ]


def notices(engine: Engine) -> list[tuple[str, str, int]]:
    with engine.connect() as conn:
        return [
            (r.device_id, r.kind, int(r.alarm_id))
            for r in conn.execute(select(alarm_notices).order_by(alarm_notices.c.id))
        ]


# -- recovery notices ---------------------------------------------------------------


def test_a_recovery_notice_only_after_an_alarm_was_raised(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    devs = [d for g in fleet.values() for d in g]
    blip, gone = devs[0], devs[1]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.state(t, devs, "online")
    hub.check(t)  # the watcher counts notices from its first pass on
    hub.state(t + 1 * S, [blip, gone], "offline")
    hub.state(t + 20 * S, [blip], "online")  # inside the 30 s grace: never alarmed
    hub.check(t + 40 * S)
    assert rows(engine, OFFLINE_ARMED) == [(gone, None)]
    assert notices(engine) == []
    hub.state(t + 90 * S, [gone], "online")
    [(subject, kind, alarm_id)] = notices(engine)
    assert (subject, kind) == (gone, OFFLINE_ARMED)
    with engine.connect() as conn:
        assert conn.execute(select(alarms.c.id).where(alarms.c.device_id == gone)).scalar_one() == alarm_id
        detail = conn.execute(select(alarm_notices.c.detail)).scalar_one()
    assert detail.startswith("back online; alarmed for 50 s")
    assert rows(engine, OFFLINE_ARMED) == [(gone, t + 90 * S)]
    hub.check(t + 91 * S)
    assert hub.sample("xl_hub_alarm_recoveries_total", kind=OFFLINE_ARMED) == 1


def test_the_broker_coming_back_is_one_recovery_notice(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    devs = [d for g in fleet.values() for d in g]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.state(t, devs, "online")
    hub.state(t + 1 * S, devs, "offline")  # all 12 in one batch: the broker
    hub.check(t + 5 * S)
    assert notices(engine) == []
    hub.state(t + 20 * S, devs, "online")
    hub.check(t + 21 * S)
    assert rows(engine, BROKER_DISCONNECT) == [(BROKER, t + 21 * S)]
    assert [(s, k) for s, k, _ in notices(engine)] == [(BROKER, BROKER_DISCONNECT)]
    assert rows(engine, OFFLINE_ARMED) == []  # and none for the houses, which were never alarmed


# -- flapping -------------------------------------------------------------------------


def test_short_drops_n_times_in_the_window_raise_one_flapping_alarm(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    dev = fleet["g000"][0]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.online(t, fleet, dev)
    at = t
    for _ in range(2):
        at = hub.flap(at + 2 * MIN, dev, down_s=5)
    assert rows(engine, FLAPPING) == []  # two drops: nothing yet, each back inside the grace
    at = hub.flap(at + 2 * MIN, dev, down_s=5)
    assert rows(engine, FLAPPING) == [(dev, None)]
    for _ in range(3):  # it goes on flapping: still the one alarm
        at = hub.flap(at + 1 * MIN, dev, down_s=5)
    assert rows(engine, FLAPPING) == [(dev, None)] and rows(engine, OFFLINE_ARMED) == []
    assert hub.sample("xl_hub_flapping_devices") == 1


def test_long_drops_stop_raising_offline_alarms_once_flapping(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    dev = fleet["g000"][0]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.online(t, fleet, dev)
    at = t
    for _ in range(2):  # fewer than flap_count: the normal behaviour, an alarm per drop past the grace
        at = hub.flap(at + 1 * MIN, dev, down_s=40)
    assert [cleared is not None for _, cleared in rows(engine, OFFLINE_ARMED)] == [True, True]
    assert [k for _, k, _ in notices(engine)] == [OFFLINE_ARMED, OFFLINE_ARMED]
    assert rows(engine, FLAPPING) == []
    hub.state(at + 1 * MIN, [dev], "offline")  # the third drop: flapping, checked before its grace is over
    hub.check(at + 1 * MIN + 5 * S)
    assert rows(engine, FLAPPING) == [(dev, None)]
    hub.check(at + 1 * MIN + 45 * S)  # past the grace, still away: no offline alarm beside the flapping one
    hub.state(at + 2 * MIN, [dev], "online")
    at = hub.flap(at + 3 * MIN, dev, down_s=40)
    assert len(rows(engine, OFFLINE_ARMED)) == 2 and rows(engine, FLAPPING) == [(dev, None)]


def test_the_drop_that_makes_it_flapping_raises_no_offline_alarm(county) -> None:  # type: ignore[no-untyped-def]
    """Checked after its grace: flapping is judged before the graces in one check."""
    engine, fleet = county
    dev = fleet["g000"][0]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.online(t, fleet, dev)
    at = t
    for _ in range(2):
        at = hub.flap(at + 1 * MIN, dev, down_s=5)
    hub.state(at + 1 * MIN, [dev], "offline")
    hub.check(at + 1 * MIN + 40 * S)  # the third drop is past the grace when first checked
    assert rows(engine, FLAPPING) == [(dev, None)]
    assert rows(engine, OFFLINE_ARMED) == []
    hub.state(at + 2 * MIN, [dev], "online")
    assert [k for _, k, _ in notices(engine)] == []  # no "back" for an alarm the flapping one stands for


def test_drops_spread_wider_than_the_window_are_not_flapping(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    dev = fleet["g000"][0]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.online(t, fleet, dev)
    at = t
    for _ in range(4):  # one drop every 6 minutes: never 3 within 10
        at = hub.flap(at + 6 * MIN, dev, down_s=5)
    assert rows(engine, FLAPPING) == []


def test_flapping_clears_after_the_device_is_stable(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    dev = fleet["g000"][0]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.online(t, fleet, dev)
    hub.check(t)
    at = t
    for _ in range(3):
        at = hub.flap(at + 1 * MIN, dev, down_s=5)
    assert rows(engine, FLAPPING) == [(dev, None)]
    hub.check(at + 15 * MIN - 1 * S)  # not yet 15 min without a change
    assert rows(engine, FLAPPING) == [(dev, None)]
    hub.check(at + 15 * MIN)
    assert rows(engine, FLAPPING) == [(dev, at + 15 * MIN)]
    assert [(s, k) for s, k, _ in notices(engine)] == [(dev, FLAPPING)]
    assert hub.sample("xl_hub_flapping_devices") == 0
    assert hub.sample("xl_hub_alarm_recoveries_total", kind=FLAPPING) == 1
    # Its count started afresh: one more drop is not flapping again.
    hub.flap(at + 16 * MIN, dev, down_s=5)
    assert len(rows(engine, FLAPPING)) == 1


def test_a_restarted_hub_counts_the_same_flaps(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    dev = fleet["g000"][0]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.online(t, fleet, dev)
    at = hub.flap(t + 1 * MIN, dev, down_s=5)
    at = hub.flap(at + 1 * MIN, dev, down_s=5)
    steady = hub.steady
    hub = HubParts(engine)  # a restart between the second drop and the third
    hub.steady = steady
    hub.flap(at + 1 * MIN, dev, down_s=5)
    assert rows(engine, FLAPPING) == [(dev, None)]


# -- maintenance windows --------------------------------------------------------------


def _away(hub: HubParts, at_ms: int, devs: list[str]) -> None:
    hub.state(at_ms, devs, "offline")


def test_a_device_window_keeps_its_alarms_quiet_and_its_expiry_raises_them(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    quiet, other = fleet["g000"][0], fleet["g000"][1]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.online(t, fleet, quiet, other)
    w = mnt.add_window(engine, "device", quiet, t, t + 10 * MIN, "replacing the camera", "op")
    with engine.connect() as conn:
        assert mnt.in_maintenance(conn, quiet, t + 1 * S) == w
        assert mnt.in_maintenance(conn, other, t + 1 * S) is None
    _away(hub, t + 1 * S, [quiet, other])
    hub.check(t + 5 * MIN)
    assert rows(engine, OFFLINE_ARMED) == [(other, None)]
    assert hub.sample("xl_hub_maintenance_devices") == 1
    hub.check(t + 10 * MIN - 1)
    assert len(rows(engine, OFFLINE_ARMED)) == 1
    hub.check(t + 10 * MIN)  # over, and the device is still away: its alarm now, not forgotten
    assert rows(engine, OFFLINE_ARMED) == [(other, None), (quiet, None)]
    assert hub.sample("xl_hub_maintenance_devices") == 0


def test_heartbeat_alarms_are_quiet_in_a_window_and_come_with_the_next_heartbeat(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    dev = fleet["g001"][0]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    mnt.add_window(engine, "group", "g001", t, t + 10 * MIN, "power works", "op")
    hub.beat(t + 1 * MIN, dev, camera="error", error="no frames", interval_s=60)
    assert rows(engine, "camera_error") == []
    hub.beat(t + 11 * MIN, dev, camera="error", error="no frames", interval_s=60)
    assert rows(engine, "camera_error") == [(dev, None)]


def test_village_and_group_windows_cover_their_devices_only(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    t = int(time.time() * 1000)
    from hub.db.schema import villages

    with engine.connect() as conn:
        village = conn.execute(select(villages.c.id)).scalar_one()
    g0, g1 = fleet["g000"], fleet["g001"]
    group = mnt.add_window(engine, "group", "g001", t, t + MIN, "group works", "op")
    with engine.connect() as conn:
        assert set(mnt.quiet_devices(conn, t)) == set(g1)
        assert mnt.in_maintenance(conn, g0[0], t) is None
    whole = mnt.add_window(engine, "village", str(village), t, t + 2 * MIN, "village power works", "op")
    with engine.connect() as conn:
        quiet = mnt.quiet_devices(conn, t)
        assert set(quiet) == set(g0 + g1)
        assert quiet[g1[0]] == whole  # of two windows, the one lasting longer
        assert mnt.in_maintenance(conn, g1[0], t + MIN + 1) == whole
        assert mnt.in_maintenance(conn, g1[0], t - 1) is None  # not begun
    assert [w.id for w in mnt.active_windows(engine, t)] == [group.id, whole.id]
    assert mnt.active_windows(engine, t + 2 * MIN) == []


def test_ending_a_window_early_raises_what_it_kept_quiet(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    dev = fleet["g000"][0]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.online(t, fleet, dev)
    w = mnt.add_window(engine, "device", dev, t, t + 60 * MIN, "works", "op")
    _away(hub, t + 1 * S, [dev])
    hub.check(t + 2 * MIN)
    assert rows(engine, OFFLINE_ARMED) == []
    assert mnt.end_window(engine, w.id, "op2", t + 3 * MIN)
    assert not mnt.end_window(engine, w.id, "op2", t + 4 * MIN)  # once
    hub.check(t + 3 * MIN)
    assert rows(engine, OFFLINE_ARMED) == [(dev, None)]
    with engine.connect() as conn:
        [ended] = [x for x in mnt.recent_windows(conn, t) if x.id == w.id]
    assert ended.ended_ms == t + 3 * MIN


def test_downs_in_a_window_do_not_count_as_flapping(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    dev = fleet["g000"][0]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.online(t, fleet, dev)
    mnt.add_window(engine, "device", dev, t, t + 5 * MIN, "power works", "op")
    at = t
    for _ in range(3):
        at = hub.flap(at + 1 * MIN, dev, down_s=5)
    hub.check(t + 6 * MIN)
    assert rows(engine, FLAPPING) == []


def test_add_window_names_the_field_it_refuses(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    dev = fleet["g000"][0]
    for args, field in [
        (("zone", dev, 0, 1, "r", "u"), "scope"),
        (("device", "123", 0, 1, "r", "u"), "target"),
        (("device", "6" * 20, 0, 1, "r", "u"), "target"),  # well formed, not registered
        (("village", "999", 0, 1, "r", "u"), "target"),
        (("group", "nope", 0, 1, "r", "u"), "target"),
        (("device", dev, 5, 5, "r", "u"), "until_ms"),
        (("device", dev, 0, 40 * 86_400_000, "r", "u"), "until_ms"),
        (("device", dev, 0, 1, " ", "u"), "reason"),
        (("device", dev, 0, 1, "r", ""), "user"),
    ]:
        with pytest.raises(ValueError, match=rf"^{field}:"):
            mnt.add_window(engine, *args)


# -- snooze ---------------------------------------------------------------------------------


def test_a_snoozed_alarm_comes_back_if_still_open(county) -> None:  # type: ignore[no-untyped-def]
    engine, fleet = county
    dev = fleet["g000"][0]
    t = int(time.time() * 1000)
    hub = HubParts(engine)
    hub.online(t, fleet, dev)
    _away(hub, t + 1 * S, [dev])
    hub.check(t + 1 * MIN)
    with engine.begin() as conn:
        alarm_id = conn.execute(select(alarms.c.id).where(alarms.c.device_id == dev)).scalar_one()
        with pytest.raises(ValueError, match=r"^hours:"):
            snooze_alarm(conn, alarm_id, 0, "op", t)
        assert snooze_alarm(conn, alarm_id + 1000, 2, "op", t) is None  # no such open alarm
        until = snooze_alarm(conn, alarm_id, 2, "op", t + 2 * MIN)
    assert until == t + 2 * MIN + 120 * MIN
    with engine.connect() as conn:
        assert snoozed(conn, [alarm_id], t + 3 * MIN) == {alarm_id: (until, "op")}
        assert snoozed(conn, [alarm_id], until) == {}  # back on the to-do list


# -- config ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("health", "message"),
    [
        ({"flap_count": 1}, "health.flap_count: found 1, expected an integer, at least 2"),
        ({"flap_window_s": 0}, "health.flap_window_s: found 0"),
        (
            {"flap_stable_s": 600, "flap_window_s": 1800},
            "health.flap_stable_s: found 600.0, expected at least health.flap_window_s (1800)",
        ),
    ],
)
def test_flapping_settings_are_checked_by_name(health: dict[str, object], message: str) -> None:
    import re

    from hub.config import ConfigError, parse_config

    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"database": {"url": "sqlite://"}, "health": health})


def test_flapping_defaults_suit_rural_4g() -> None:
    from hub.config import parse_config

    h = parse_config({"database": {"url": "sqlite://"}}).health
    # Five drops in half an hour; cleared after an hour without a change (longer than the window).
    assert (h.flap_count, h.flap_window_s, h.flap_stable_s) == (5, 1800.0, 3600.0)

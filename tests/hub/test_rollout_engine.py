"""The rollout engine in-process with a fake clock, on SQLite and PostgreSQL:
cohorts advance by their thresholds, the rollout halts past the failure
threshold with the rest of the fleet untouched, pause/resume/abort, an offline
device gets its command when it is back, maintenance windows, and the audit log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select, update

from hub.db import make_engine
from hub.db.schema import devices
from hub.rollout import store
from hub.rollout.engine import RolloutEngine
from hub.rollout.tables import rollout_audit, rollout_devices, rollouts
from tests.support.rollout import NEW, OLD, Clock, Recorder, at, make_villages, presence, report


@pytest.fixture
def world(db_url: str) -> Iterator[tuple[Engine, dict[str, list[str]]]]:
    engine = make_engine(db_url)
    fleet = make_villages(engine)
    yield engine, fleet
    engine.dispose()


def _engine(engine: Engine, clock: Clock, sender: Recorder) -> RolloutEngine:
    return RolloutEngine(engine, sender, timezone="Asia/Shanghai", resend_after_s=3600, clock=clock)


def _states(engine: Engine, rid: int) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(rollout_devices.c.device_id, rollout_devices.c.state).where(rollout_devices.c.rollout_id == rid)
        )
        return {r.device_id: r.state for r in rows}


def _status(engine: Engine, rid: int) -> tuple[str, str | None]:
    with engine.connect() as conn:
        r = conn.execute(select(rollouts.c.status, rollouts.c.reason).where(rollouts.c.id == rid)).one()
        return r.status, r.reason


def _actions(engine: Engine, rid: int) -> list[str]:
    with engine.connect() as conn:
        q = select(rollout_audit.c.action).where(rollout_audit.c.rollout_id == rid, rollout_audit.c.device_id.is_(None))
        return list(conn.execute(q.order_by(rollout_audit.c.id)).scalars())


def _commit(engine: Engine, devs: list[str], now: int, rid: int) -> None:
    for d in devs:
        report(engine, d, now, ver=NEW, update_state="ok", update_version=NEW, update_rollout=str(rid))


def test_cohorts_advance_by_their_thresholds_and_the_rollout_finishes(
    world: tuple[Engine, dict[str, list[str]]],
) -> None:
    engine, fleet = world
    peace, red = fleet["和平村"], fleet["红星村"]
    installers = red[:2]
    clock, sender = Clock(at("2026-03-01 02:00")), Recorder()
    new = store.NewRollout(
        NEW, [f"installers:{','.join(installers)}", "village:和平村", "percent:20", "all"], 90, 10, None
    )
    rid = store.create(engine, new, "zhang", clock())
    eng = _engine(engine, clock, sender)

    assert eng.tick().started == [(rid, 0)]
    assert sender.devices() == installers
    assert sender.sent[0][1:] == ("update", {"ver": NEW, "ro": str(rid)})
    assert eng.tick().sent == []  # sent once, not every tick
    report(engine, installers[0], clock(), update_state="dl", update_version=NEW, update_rollout=str(rid))
    eng.tick()
    assert _states(engine, rid)[installers[0]] == "working"
    clock.advance(60)
    _commit(engine, installers, clock(), rid)
    t = eng.tick()
    assert t.started == [(rid, 1)] and sorted(t.sent) == sorted(peace)

    clock.advance(60)
    _commit(engine, peace[:8], clock(), rid)  # 80 % < 90 %: the village is not enough yet
    assert eng.tick().started == []
    _commit(engine, peace[8:9], clock(), rid)  # 90 %
    t = eng.tick()
    assert t.started == [(rid, 2)]
    percent = t.sent
    assert len(percent) == 4 and set(percent) <= set(red[2:])  # 20 % of 20, from what earlier cohorts left

    _commit(engine, percent, clock(), rid)
    t = eng.tick()
    assert t.started == [(rid, 3)] and sorted(t.sent) == sorted(set(red[2:]) - set(percent))
    _commit(engine, [*t.sent, peace[9]], clock(), rid)
    assert eng.tick().done == [rid]
    assert _status(engine, rid) == ("done", None)
    assert set(_states(engine, rid).values()) == {"committed"}
    assert _actions(engine, rid) == ["create", "cohort_start", "cohort_start", "cohort_start", "cohort_start", "done"]
    assert len(sender.sent) == 20  # every device exactly once


def test_the_rollout_halts_past_the_failure_threshold_and_touches_nothing_more(
    world: tuple[Engine, dict[str, list[str]]],
) -> None:
    engine, fleet = world
    peace, red = fleet["和平村"], fleet["红星村"]
    for d in peace[5:]:
        presence(engine, d, False, 1)  # half the village is away when the cohort starts
    clock, sender = Clock(at("2026-03-01 02:00")), Recorder()
    rid = store.create(engine, store.NewRollout(NEW, ["village:和平村", "all"], 90, 10), "zhang", clock())
    eng = _engine(engine, clock, sender)
    assert sorted(eng.tick().sent) == sorted(peace[:5])
    clock.advance(600)
    reason = "health gate: no broker connection within 600 s"
    for d in peace[:2]:  # 2 of 10 = 20 % > 10 %
        report(engine, d, clock(), update_state="rb", update_version=NEW, update_error=reason, update_rollout=str(rid))
    t = eng.tick()
    assert t.halted == [rid] and t.sent == []
    status, why = _status(engine, rid)
    assert status == "halted" and why == "cohort 1 (village:和平村): 2 of 10 failed (20.0% > 10%)"
    for d in peace[5:]:
        presence(engine, d, True, clock())  # back online: a halted rollout sends them nothing
    clock.advance(7200)
    assert eng.tick().sent == []
    states = _states(engine, rid)
    assert [states[d] for d in peace[:2]] == ["failed", "failed"]
    assert {states[d] for d in peace[5:]} == {"queued"}
    assert {states[d] for d in red} == {"waiting"}  # the next cohort never started
    assert len(sender.sent) == 5
    with engine.connect() as conn:
        failed = conn.execute(
            select(rollout_audit.c.device_id, rollout_audit.c.detail).where(rollout_audit.c.action == "failed")
        ).all()
    assert sorted(failed) == sorted((d, reason) for d in peace[:2])
    with pytest.raises(store.RolloutError, match="is halted: cannot resume it"):
        store.resume(engine, rid, "zhang", clock())
    with pytest.raises(store.RolloutError, match=f"rollout {rid} .* is halted: one rollout at a time"):
        store.create(engine, store.NewRollout(NEW, ["all"]), "zhang", clock())
    store.abort(engine, rid, "zhang", clock(), "bad release")
    assert _status(engine, rid) == ("aborted", "bad release")
    assert _actions(engine, rid) == ["create", "cohort_start", "halt", "abort"]


def test_pause_resume_abort(world: tuple[Engine, dict[str, list[str]]]) -> None:
    engine, fleet = world
    peace = fleet["和平村"]
    clock, sender = Clock(at("2026-03-01 02:00")), Recorder()
    rid = store.create(engine, store.NewRollout(NEW, ["village:和平村", "all"], 50, 50), "li", clock())
    store.pause(engine, rid, "li", clock(), "waiting for the township's go-ahead")
    eng = _engine(engine, clock, sender)
    assert eng.tick().started == [] and sender.sent == []
    with pytest.raises(store.RolloutError, match="is paused: cannot pause it"):
        store.pause(engine, rid, "li", clock())
    store.resume(engine, rid, "li", clock())
    assert len(eng.tick().sent) == 10
    store.pause(engine, rid, "li", clock())
    _commit(engine, peace, clock(), rid)
    assert eng.tick().started == []  # committed, but a paused rollout starts no cohort
    assert set(_states(engine, rid)[d] for d in peace) == {"committed"}  # still followed while paused
    store.abort(engine, rid, "li", clock())
    assert eng.tick().sent == [] and _status(engine, rid)[0] == "aborted"
    with pytest.raises(store.RolloutError, match="is aborted: cannot resume it"):
        store.resume(engine, rid, "li", clock())
    with engine.connect() as conn:
        log = conn.execute(
            select(rollout_audit.c.actor, rollout_audit.c.action, rollout_audit.c.detail)
            .where(rollout_audit.c.device_id.is_(None))
            .order_by(rollout_audit.c.id)
        ).all()
    assert [tuple(r) for r in log] == [
        ("li", "create", "0.3.0: village:和平村 10; all 10; min success 50%, max failure 50%"),
        ("li", "pause", "waiting for the township's go-ahead"),
        ("li", "resume", None),
        ("hub", "cohort_start", "village:和平村, 10 devices (first cohort)"),
        ("li", "pause", None),
        ("li", "abort", None),
    ]
    # A new rollout may start once the last one is over.
    assert store.create(engine, store.NewRollout(NEW, ["all"]), "li", clock()) == rid + 1


def test_an_offline_device_gets_its_command_when_it_comes_back(world: tuple[Engine, dict[str, list[str]]]) -> None:
    engine, fleet = world
    away, there = fleet["和平村"][0], fleet["和平村"][1]
    presence(engine, away, False, 1)
    clock, sender = Clock(at("2026-03-01 02:00")), Recorder()
    rid = store.create(engine, store.NewRollout(NEW, [f"installers:{away},{there}"]), "li", clock())
    eng = _engine(engine, clock, sender)
    assert eng.tick().sent == [there]
    clock.advance(30)
    assert eng.tick().sent == []
    presence(engine, away, True, clock())
    assert eng.tick().sent == [away]
    # `there` drops off before it got going and comes back: sent again (the broker may have lost it).
    clock.advance(30)
    presence(engine, there, False, clock())
    clock.advance(30)
    assert eng.tick().sent == []
    presence(engine, there, True, clock())
    assert eng.tick().sent == [there]
    # No progress for resend_after_s: sent once more.
    clock.advance(3601)
    assert sorted(eng.tick().sent) == sorted([away, there])
    with engine.connect() as conn:
        q = select(rollout_devices.c.device_id, rollout_devices.c.sends).where(rollout_devices.c.rollout_id == rid)
        sends = {r.device_id: r.sends for r in conn.execute(q)}
    assert sends == {away: 2, there: 3}


def test_commands_only_inside_the_maintenance_window(world: tuple[Engine, dict[str, list[str]]]) -> None:
    engine, _fleet = world
    clock, sender = Clock(at("2026-03-01 12:00")), Recorder()
    rid = store.create(engine, store.NewRollout(NEW, ["village:红星村"], window="23:30-04:00"), "li", clock())
    eng = _engine(engine, clock, sender)
    assert eng.tick().started == [(rid, 0)] and sender.sent == []  # the cohort starts; nothing is sent at noon
    clock.ms = at("2026-03-01 23:29")
    assert eng.tick().sent == []
    clock.ms = at("2026-03-01 23:30")
    assert len(eng.tick().sent) == 10
    assert set(_states(engine, rid).values()) == {"sent"}


def test_an_already_updated_device_is_committed_without_a_command(
    world: tuple[Engine, dict[str, list[str]]],
) -> None:
    engine, fleet = world
    done, todo = fleet["和平村"][:2]
    clock, sender = Clock(at("2026-03-01 02:00")), Recorder()
    report(engine, done, clock(), ver=NEW)
    rid = store.create(engine, store.NewRollout(NEW, [f"installers:{done},{todo}"]), "li", clock())
    eng = _engine(engine, clock, sender)
    assert eng.tick().sent == [todo]
    assert _states(engine, rid) == {done: "committed", todo: "sent"}
    # The trial is not a commit: the device's health gate may still roll it back.
    report(engine, todo, clock(), ver=NEW, update_state="trial", update_version=NEW, update_rollout=str(rid))
    eng.tick()
    assert _states(engine, rid)[todo] == "working"


def test_the_new_ver_before_the_first_health_of_the_new_release_is_not_a_commit(
    world: tuple[Engine, dict[str, list[str]]],
) -> None:
    # Found by bench/rollout_fleet.py: a restarted agent's retained online state (ver = the new
    # release) is stored before its first health (us trial), so for a tick the latest health is
    # the old release's "inst"; counting that as committed let cohorts start on devices in trial.
    engine, fleet = world
    dev = fleet["和平村"][0]
    clock, sender = Clock(at("2026-03-01 02:00")), Recorder()
    rid = store.create(engine, store.NewRollout(NEW, [f"installers:{dev}"]), "li", clock())
    eng = _engine(engine, clock, sender)
    eng.tick()
    report(engine, dev, clock(), ver=OLD, update_state="inst", update_version=NEW, update_rollout=str(rid))
    eng.tick()
    with engine.begin() as conn:  # what ingest stores from the state message of the restarted agent
        conn.execute(update(devices).where(devices.c.id == dev).values(agent_version=NEW))
    eng.tick()
    assert _states(engine, rid)[dev] == "working"
    report(engine, dev, clock(), ver=NEW, update_state="trial", update_version=NEW, update_rollout=str(rid))
    eng.tick()
    assert _states(engine, rid)[dev] == "working"
    report(engine, dev, clock(), ver=NEW, update_state="ok", update_version=NEW, update_rollout=str(rid))
    eng.tick()
    assert _states(engine, rid)[dev] == "committed"
    with engine.connect() as conn:
        moves = conn.execute(
            select(rollout_audit.c.action).where(rollout_audit.c.device_id == dev).order_by(rollout_audit.c.id)
        ).scalars()
        assert [m for m in moves if m != "send"] == ["working", "committed"]


@pytest.mark.parametrize(
    ("cohorts", "window", "version", "message"),
    [
        (["village:无此村"], None, NEW, "village:无此村: no such village in the registry"),
        (["township:99"], None, NEW, "township:99: no such township"),
        (["installers:62062101011190099999"], None, NEW, "device 62062101011190099999 is not registered"),
        (["installers:123"], None, NEW, "'123' is not a 20-digit device id"),
        (["percent:0"], None, NEW, "percent must be more than 0"),
        (["percent:ten"], None, NEW, "'ten' is not a number of percent"),
        (["all", "village:和平村"], None, NEW, r"cohort 2 \(village:和平村\) has no device"),
        (["nearby"], None, NEW, "expected all, percent:N"),
        (["all"], "1:00-5:00", NEW, "expected HH:MM-HH:MM"),
        (["all"], "02:00-02:00", NEW, "the same minute"),
        (["all"], None, "latest", "version 'latest': expected a release version"),
        ([], None, NEW, "at least one --cohort"),
    ],
)
def test_bad_rollouts_are_refused_naming_what_is_wrong(
    sqlite_url: str, cohorts: list[str], window: str | None, version: str, message: str
) -> None:
    engine = make_engine(sqlite_url)
    make_villages(engine, per_village=2)
    with pytest.raises(store.RolloutError, match=message):
        store.create(engine, store.NewRollout(version, cohorts, window=window), "li", 0)
    with engine.connect() as conn:
        assert conn.execute(select(rollouts.c.id)).first() is None  # nothing half-made
    engine.dispose()

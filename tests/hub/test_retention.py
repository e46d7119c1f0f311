"""Retention by data class (issue 21): ages, batches, what is held, the CLI, the config, the hourly job.

Every test runs on SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import generate_latest
from sqlalchemy import Engine, Table, func, select

from hub.cli import main
from hub.clips.tables import clips
from hub.config import ConfigError, parse_config
from hub.config_retention import RetentionConfig
from hub.console.tables import console_audit
from hub.db import make_engine, upgrade
from hub.db.schema_ops import alerts, events, health_history, snapshots
from hub.forward.tables import forward_outbox, forward_sinks
from hub.metrics import HubMetrics
from hub.retention.job import RetentionJob
from hub.retention.prune import DAY_MS, Pruner
from hub.rollout.tables import rollout_audit

DEV = "62062101000000000001"
NOW_S = float(int(time.time()))  # the CLI runs on the real clock
NOW_MS = int(NOW_S * 1000)


def ago(days: float) -> int:
    return NOW_MS - int(days * DAY_MS)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    e = make_engine(db_url)
    upgrade(e)
    yield e
    e.dispose()


def add_event(
    engine: Engine, event_id: int, days: float, *, snap_days: float | None = None, phase: str = "start"
) -> None:
    """An event phase ``days`` old; with ``snap_days`` its snapshot, received that long ago."""
    with engine.begin() as conn:
        t = ago(days)
        conn.execute(
            events.insert().values(
                device_id=DEV, event_id=event_id, phase=phase, kind="person", score=80,
                has_snapshot=snap_days is not None, device_time_ms=t, received_ms=t, time_ms=t, time_trusted=True,
            )
        )  # fmt: skip
        if snap_days is not None:
            s = ago(snap_days)
            conn.execute(
                snapshots.insert().values(
                    device_id=DEV, event_id=event_id, phase=phase, device_time_ms=s, received_ms=s,
                    width=320, height=240, jpeg=b"\xff\xd8face\xff\xd9",
                )
            )  # fmt: skip


def add_alert(engine: Engine, alert_id: str, event_id: int, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            alerts.insert().values(
                id=alert_id, kind="person", origin_device=DEV, household_id="HH0", group_id="g0",
                event_id=event_id, raised_ms=ago(400), status=status,
            )
        )  # fmt: skip


def add_outbox(engine: Engine, key: str, state: str) -> None:
    with engine.begin() as conn:
        if conn.execute(select(forward_sinks.c.sink).where(forward_sinks.c.sink == "webhook")).first() is None:
            conn.execute(forward_sinks.insert().values(sink="webhook", next_seq=1))
        seq = int(conn.execute(select(func.count()).select_from(forward_outbox)).scalar_one()) + 1
        conn.execute(
            forward_outbox.insert().values(
                sink="webhook", seq=seq, item_key=key, item_type="event", payload="{}", state=state,
                created_ms=ago(400), age_from_ms=ago(400), next_attempt_ms=ago(400),
            )
        )  # fmt: skip


def ids(engine: Engine, table: Table = events) -> list[int]:
    with engine.connect() as conn:
        return sorted(int(x) for x in conn.execute(select(table.c.event_id)).scalars())


def count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def pruner(engine: Engine, **kw: Any) -> Pruner:
    return Pruner(engine, dataclasses.replace(RetentionConfig(pause_s=0), **kw), clock=lambda: NOW_S)


def test_each_class_goes_at_its_own_age_and_the_audit_log_outlives_the_events(engine: Engine) -> None:
    add_event(engine, 1, 366, snap_days=366)  # event past 365 days: goes, its snapshot with it
    add_event(engine, 2, 364)  # event younger than 365 days: stays
    add_event(engine, 3, 40, snap_days=31)  # snapshot past 30 days: goes, its event stays
    add_event(engine, 4, 29, snap_days=29)  # both stay
    with engine.begin() as conn:
        for bucket_days in (91, 89):
            conn.execute(health_history.insert().values(device_id=DEV, bucket_ms=ago(bucket_days), samples=1))
        for at_days in (1096, 400):  # an audit row older than any kept event still stays until 1095 days
            conn.execute(console_audit.insert().values(at_ms=ago(at_days), action="login"))
            conn.execute(rollout_audit.insert().values(at_ms=ago(at_days), rollout_id=1, actor="a", action="create"))

    done = pruner(engine).run()

    assert ids(engine) == [2, 3, 4]
    assert ids(engine, snapshots) == [4]
    with engine.connect() as conn:
        assert [int(b) for b in conn.execute(select(health_history.c.bucket_ms)).scalars()] == [ago(89)]
        assert [int(a) for a in conn.execute(select(console_audit.c.at_ms)).scalars()] == [ago(400)]
        assert [int(a) for a in conn.execute(select(rollout_audit.c.at_ms)).scalars()] == [ago(400)]
    t = done.tallies
    assert (t["events"].deleted, t["snapshots"].deleted, t["health"].deleted, t["audit"].deleted) == (
        1,
        2,
        1,
        2,
    )  # 2: with event 1, and 3's by age


def test_batches_are_respected_with_a_pause_between_them(engine: Engine) -> None:
    for i in range(10):
        add_event(engine, i, 400)
    left: list[int] = []

    def wait(seconds: float) -> bool:
        assert seconds >= 0.25  # pause_s, or more after a slow batch
        left.append(count(engine, events))  # what each committed batch left
        return False

    cfg = RetentionConfig(batch=3, pause_s=0.25)
    done = Pruner(engine, cfg, clock=lambda: NOW_S, wait=wait).run()
    assert left == [7, 4, 1]  # three full batches, each followed by a pause; the short fourth ends the class
    assert done.tallies["events"].batches == 4 and done.tallies["events"].deleted == 10
    assert count(engine, events) == 0


def test_events_of_open_alerts_are_kept_and_alert_snapshots_live_as_long_as_their_events(engine: Engine) -> None:
    add_event(engine, 1, 400, snap_days=400)
    add_alert(engine, "open-1", 1, "open")  # still being answered: its event is held past 365 days
    add_event(engine, 2, 400, snap_days=400)
    add_alert(engine, "closed-2", 2, "closed")  # answered: its event goes at its age
    add_event(engine, 3, 100, snap_days=100)
    add_alert(engine, "closed-3", 3, "closed")  # an alert's picture: kept past 30 days, as long as the event
    add_event(engine, 4, 100, snap_days=100)  # no alert: the picture goes at 30 days

    done = pruner(engine).run()

    assert ids(engine) == [1, 3, 4]
    assert ids(engine, snapshots) == [1, 3]
    assert done.tallies["events"].held == 1 and done.tallies["snapshots"].held == 2  # 1 (open) and 3
    with engine.begin() as conn:
        conn.execute(alerts.update().where(alerts.c.id == "open-1").values(status="closed"))
    pruner(engine).run()
    assert ids(engine) == [3, 4] and ids(engine, snapshots) == [3]


def test_items_waiting_to_be_forwarded_keep_their_event_and_snapshot(engine: Engine) -> None:
    for i, state in ((1, "pending"), (2, "dead"), (3, "done")):
        add_event(engine, i, 400, snap_days=400)
        add_outbox(engine, f"{DEV}-{i}-start", state)
    add_event(engine, 4, 100, snap_days=100)
    add_outbox(engine, f"{DEV}-4-start", "pending")

    done = pruner(engine).run()

    assert ids(engine) == [1, 2, 4]  # the delivered one went
    assert ids(engine, snapshots) == [1, 2, 4]  # a picture still owed to the platform stays too
    assert count(engine, forward_outbox) == 4  # retention never touches the outbox itself
    assert done.tallies["events"].held == 2 and done.tallies["snapshots"].held == 3  # 1, 2 and 4


def test_a_kept_clip_keeps_its_event(engine: Engine) -> None:
    add_event(engine, 1, 400)
    add_event(engine, 2, 400)
    with engine.begin() as conn:
        conn.execute(clips.insert().values(device_id=DEV, event_id=1, bytes=10, sha256="0" * 64, received_ms=ago(1)))
    pruner(engine).run()
    assert ids(engine) == [1]


def test_the_cli_dry_run_deletes_nothing_and_the_run_records_itself(
    engine: Engine, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    add_event(engine, 1, 400, snap_days=400)
    add_event(engine, 2, 100, snap_days=100)
    with engine.begin() as conn:
        conn.execute(clips.insert().values(device_id=DEV, event_id=2, bytes=10, sha256="0" * 64, received_ms=0))

    assert main(["retention", "run", "--dry-run", "--db", db_url]) == 0
    out = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert out["class"][:5] == ["class", "keep_days", "past_age", "would_delete", "held"]
    assert out["events"][1:4] == ["365.0", "1", "1"] and out["snapshots"][1:4] == ["30.0", "2", "2"]
    assert out["clips"][4:6] == ["1", "1"]  # shown by the clips' own rules: 30 days, 90 for alert clips
    assert ids(engine) == [1, 2] and ids(engine, snapshots) == [1, 2] and count(engine, console_audit) == 0

    assert main(["retention", "run", "--db", db_url]) == 0
    assert "deleted" in capsys.readouterr().out
    assert ids(engine) == [2] and ids(engine, snapshots) == []
    with engine.connect() as conn:
        row = conn.execute(select(console_audit.c.user_name, console_audit.c.action, console_audit.c.detail)).one()
    assert row == ("hub", "retention", "events=1 snapshots=2 health=0 audit=0")


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"events_days": 0}, "retention.events_days"),
        ({"batch": 0}, "retention.batch"),
        ({"batch": 20_000}, "retention.batch"),
        ({"pause_s": -1}, "retention.pause_s"),
        ({"interval_s": "hourly"}, "retention.interval_s"),
        ({"snapshot_days": 7}, "retention.snapshot_days"),  # a typo: unknown key
        ({"snapshots_days": 400}, "retention.snapshots_days"),  # longer than events: it goes with them
        ({"audit_days": 100}, "retention.audit_days"),  # shorter than events
        ({"events_days": 60}, "retention.events_days"),  # shorter than clips.keep_days_alert (90)
    ],
)
def test_config_errors_name_the_key(section: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"database": {"url": "sqlite://"}, "retention": section})
    assert any(line.startswith(f"config: {key}:") or f" {key}:" in line for line in err.value.lines()), (
        err.value.lines()
    )


def test_config_defaults() -> None:
    r = parse_config({"database": {"url": "sqlite://"}}).retention
    assert (r.events_days, r.snapshots_days, r.health_days, r.audit_days) == (365, 30, 90, 1095)
    assert (r.batch, r.interval_s, r.enabled) == (2000, 3600, True)


def test_the_job_runs_on_its_interval_and_counts_on_metrics(engine: Engine) -> None:
    add_event(engine, 1, 400)
    metrics = HubMetrics()
    job = RetentionJob(engine, RetentionConfig(interval_s=0.1, pause_s=0), metrics, clock=lambda: NOW_S)
    passes = threading.Semaphore(0)
    run_once = job.run_once

    def counted() -> object:
        done = run_once()
        passes.release()
        return done

    job._periodic.job = counted
    started = time.monotonic()
    job.start()
    try:
        assert passes.acquire(timeout=10) and passes.acquire(timeout=10)
    finally:
        job.stop()
    assert time.monotonic() - started >= 0.2  # the second pass came one interval after the first
    assert ids(engine) == []
    text = generate_latest(metrics.registry).decode()
    assert 'xl_hub_retention_deleted_total{data_class="events"} 1.0' in text
    assert 'xl_hub_retention_deleted_total{data_class="snapshots"} 0.0' in text


def test_stop_ends_a_long_backlog_within_a_batch(engine: Engine) -> None:
    for i in range(5):
        add_event(engine, i, 400)
    job = RetentionJob(engine, RetentionConfig(batch=1, pause_s=30), clock=lambda: NOW_S)
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(job.run_once()))
    t.start()
    time.sleep(0.5)
    started = time.monotonic()
    job.stop()
    t.join(5)
    assert not t.is_alive() and time.monotonic() - started < 5
    assert job.last is not None and job.last.stopped
    assert count(engine, events) == 4  # one batch, then the pause saw the stop

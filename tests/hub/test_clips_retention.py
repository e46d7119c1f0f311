"""Retention of the hub's clips by class (issue 18, docs/clips.md "At the hub"): the
clips of alerts (their event raised an alert, or is a panic) are kept
``keep_days_alert``, the rest ``keep_days``; over ``max_bytes`` the rest go
first, oldest first, and alert clips only when nothing else is left. Rows and
files go together, in batches. The class is decided when a clip is indexed
(through the real upload route), and revision clips_0002 sets it for clips
stored before. SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, select, text

from hub.clips import retention
from hub.clips.files import files_of
from hub.clips.retention import prune
from hub.clips.tables import clips
from hub.db import make_engine, upgrade
from hub.db.migrate import alembic_config
from hub.db.schema_ops import alerts, events
from tests.support.clip_hub import GOOD, OTHER, ClipHub, patch, raw, start_clip_hub

DAY_MS = 86_400_000
NOW = 1_800_000_000_000
BIG = 1 << 40


@pytest.fixture
def hub(db_url: str, tmp_path: Path) -> Iterator[ClipHub]:
    h = start_clip_hub(db_url, tmp_path)
    yield h
    h.stop()


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every loop of a pass runs several batches."""
    monkeypatch.setattr(retention, "BATCH", 2)


def put(hub: ClipHub, event: int, age_days: float, alert: bool, size: int = 1000, device: str = GOOD) -> Path:
    f = files_of(hub.root, device, event)
    f.final.parent.mkdir(parents=True, exist_ok=True)
    f.final.write_bytes(b"x" * size)
    with hub.engine.begin() as conn:
        conn.execute(
            clips.insert().values(
                device_id=device,
                event_id=event,
                bytes=size,
                sha256="0" * 64,
                received_ms=NOW - int(age_days * DAY_MS),
                alert=alert,
            )
        )
    return f.final


def stored(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(conn.execute(select(clips.c.event_id)).scalars())


def on_disk(hub: ClipHub) -> list[int]:
    return sorted(int(p.stem) for p in hub.root.glob("*/*.mp4"))


def test_each_class_has_its_own_age_limit(hub: ClipHub, small_batches: None) -> None:
    for event, age in ((1, 29), (2, 31), (3, 31.5), (4, 200)):
        put(hub, event, age, alert=False)
    for event, age in ((11, 31), (12, 89), (13, 91), (14, 400)):
        put(hub, 10 + event, age, alert=True)
    done = prune(hub.engine, hub.root, keep_days=30, max_bytes=BIG, now_ms=NOW, keep_days_alert=90)
    assert (done.by_age, done.alert_by_age, done.by_bytes, done.freed) == (5, 2, 0, 5000)
    assert stored(hub.engine) == on_disk(hub) == [1, 21, 22]  # rows and files together
    # Without keep_days_alert both classes keep keep_days.
    done = prune(hub.engine, hub.root, keep_days=30, max_bytes=BIG, now_ms=NOW)
    assert (done.by_age, done.alert_by_age) == (2, 2) and stored(hub.engine) == on_disk(hub) == [1]


def test_the_byte_cap_takes_the_other_clips_first_and_alert_clips_last(hub: ClipHub, small_batches: None) -> None:
    put(hub, 1, 10, alert=True)  # the oldest of all
    put(hub, 2, 9, alert=False)
    put(hub, 3, 8, alert=False, device=OTHER)
    put(hub, 4, 7, alert=False)
    put(hub, 5, 6, alert=True)
    put(hub, 6, 1, alert=False)  # the newest of all
    put(hub, 7, 2, alert=True)
    # 7000 bytes, 3500 allowed: the four other clips go, oldest first, before any alert clip,
    # though the oldest alert clip is older than all of them.
    done = prune(hub.engine, hub.root, keep_days=30, max_bytes=3500, now_ms=NOW, keep_days_alert=90)
    assert (done.by_age, done.by_bytes, done.alert_by_bytes, done.freed) == (0, 4, 0, 4000)
    assert stored(hub.engine) == on_disk(hub) == [1, 5, 7]
    # Nothing else left: alert clips go too, oldest first, only as many as the cap needs.
    done = prune(hub.engine, hub.root, keep_days=30, max_bytes=1500, now_ms=NOW, keep_days_alert=90)
    assert (done.by_bytes, done.alert_by_bytes, done.freed) == (2, 2, 2000)
    assert stored(hub.engine) == on_disk(hub) == [7]
    assert prune(hub.engine, hub.root, 30, 1500, NOW, 90).by_bytes == 0


def test_a_new_clip_is_an_alert_clip_when_its_event_alerted_or_is_a_panic(hub: ClipHub) -> None:
    with hub.engine.begin() as conn:
        for event, kind in ((1, "person"), (2, "panic"), (3, "person"), (4, "person")):
            conn.execute(
                events.insert().values(
                    device_id=GOOD, event_id=event, phase="start", kind=kind, score=90, has_snapshot=False,
                    device_time_ms=NOW, received_ms=NOW, time_ms=NOW, time_trusted=True,
                )
            )  # fmt: skip
        # Event 1 raised an alert; 3 is a person in armed hours that was debounced (no row); 4 is
        # another device's event id that alerted (only the origin's own event counts).
        for alert_id, origin, event in (("a1", GOOD, 1), ("a2", OTHER, 4)):
            conn.execute(
                alerts.insert().values(
                    id=alert_id, kind="person", origin_device=origin, household_id="HH0", group_id="g0101",
                    event_id=event, raised_ms=NOW, status="open",
                )
            )  # fmt: skip
    for event in (1, 2, 3, 4, 5):  # 5: no event row at all (never reached the hub)
        data = os.urandom(800)
        assert patch(raw(hub), f"/clips/{GOOD}/{event}", data, 0, data).status == 204
    with hub.engine.connect() as conn:
        marked = {r.event_id: r.alert for r in conn.execute(select(clips.c.event_id, clips.c.alert))}
    assert marked == {1: True, 2: True, 3: False, 4: False, 5: False}


def test_the_upgrade_marks_the_clips_stored_before_it(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.begin() as conn:
        cfg = alembic_config(conn)
        # Every other branch to its head (rooms added since keep coming), clips to just before the marking.
        script = ScriptDirectory.from_config(cfg)
        for head in script.get_heads():
            if "clips" not in script.get_revision(head).branch_labels:
                command.upgrade(cfg, head)
        command.upgrade(cfg, "clips_0001")
    with engine.begin() as conn:
        for event, kind in ((1, "person"), (2, "panic"), (3, "person")):
            conn.execute(
                text(
                    "INSERT INTO events (device_id, event_id, phase, kind, score, has_snapshot, device_time_ms,"
                    " received_ms, time_ms, time_trusted) VALUES (:d, :e, 'start', :k, 90, :f, 0, 0, 0, :t)"
                ),
                {"d": GOOD, "e": event, "k": kind, "f": False, "t": True},
            )
            conn.execute(
                text("INSERT INTO clips (device_id, event_id, bytes, sha256, received_ms) VALUES (:d, :e, 10, :s, 0)"),
                {"d": GOOD, "e": event, "s": "0" * 64},
            )
        conn.execute(
            text(
                "INSERT INTO alerts (id, kind, origin_device, household_id, group_id, event_id, raised_ms, status)"
                " VALUES ('a1', 'person', :d, 'HH0', 'g0101', 1, 0, 'open')"
            ),
            {"d": GOOD},
        )
    assert upgrade(engine) == ["clips_0002"]
    with engine.connect() as conn:
        marked = {r.event_id: r.alert for r in conn.execute(select(clips.c.event_id, clips.c.alert))}
    assert marked == {1: True, 2: True, 3: False}
    engine.dispose()

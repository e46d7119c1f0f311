"""Retention of stored clips (docs/clips.md, "At the hub"), on a timer like the health watcher.

Two classes of clip (``clips.alert``, set when a clip is indexed: ``is_alert_clip``):

- **alert clips**: the event raised a 十户联防 alert (an ``alerts`` row names it)
  or is a panic. They are the evidence an incident may need weeks later, and
  are kept ``clips.keep_days_alert`` days;
- **the rest** (clips an operator fetched, or uploaded by a wider policy):
  ``clips.keep_days``.

Over ``clips.max_bytes`` (all clips together) the oldest clips that are not
alert clips go first; alert clips, oldest first, only once none of the rest is
left.

Everything goes in batches of ``BATCH`` clips, one short transaction each, so
ingest (which writes to the same database) never waits long for retention.
The rows go before the files: the console never offers a clip whose file is
half deleted, and a crash between the two leaves only orphan files, which the
next pass removes (files with no row, older than an hour: never a clip being
indexed right now).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, and_, case, delete, false, func, or_, select, true, tuple_
from sqlalchemy.sql.elements import ColumnElement

from hub.clips.files import files_of
from hub.clips.tables import clips
from hub.db.schema_ops import alerts, events
from hub.periodic import Periodic

log = logging.getLogger("xl.hub.clips")

ORPHAN_AGE_S = 3600.0
# An upload left half done (.part and its .meta.json): a device offline this long starts again from 0.
ABANDONED_AGE_S = 3 * 86_400.0
BATCH = 500
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Pruned:
    by_age: int  # clips of both classes past their class's age limit
    by_bytes: int  # clips of both classes evicted by the byte cap
    freed: int
    orphans: int
    alert_by_age: int = 0  # of by_age, alert clips
    alert_by_bytes: int = 0  # of by_bytes, alert clips: the cap is too small for the county's evidence


def is_alert_clip(conn: Connection, device_id: str, event_id: int) -> bool:
    """Whether the clip of ``device_id``'s event ``event_id`` is kept as an alert's.

    The event raised an alert (hub.alerts.engine writes the event's id into
    its ``alerts`` row, in the transaction that stores the event, before the
    device's outbox lets its uploader run), or it is a panic: a second press
    inside ``alerts.debounce_minutes`` raises no new alert but is still someone
    calling for help. A person event in armed hours that was debounced, or
    came too late to alert, is not one: it woke nobody."""
    raised = conn.execute(
        select(alerts.c.id).where(alerts.c.origin_device == device_id, alerts.c.event_id == event_id).limit(1)
    ).first()
    if raised is not None:
        return True
    panic = conn.execute(
        select(events.c.id)
        .where(events.c.device_id == device_id, events.c.event_id == event_id, events.c.kind == "panic")
        .limit(1)
    ).first()
    return panic is not None


def past_age(now_ms: int, keep_days: float, keep_days_alert: float | None = None) -> ColumnElement[bool]:
    """Clips past their class's age (also what ``xl-hub retention run --dry-run`` counts)."""
    cutoff = now_ms - int(keep_days * DAY_MS)
    cutoff_alert = now_ms - int((keep_days if keep_days_alert is None else keep_days_alert) * DAY_MS)
    return or_(
        and_(clips.c.alert == false(), clips.c.received_ms < cutoff),
        and_(clips.c.alert == true(), clips.c.received_ms < cutoff_alert),
    )


def due(engine: Engine, keep_days: float, keep_days_alert: float | None, now_ms: int) -> tuple[int, int]:
    """How many clips a pass would delete by age, and how many of them are alert clips."""
    with engine.connect() as conn:
        row = conn.execute(
            select(func.count(), func.coalesce(func.sum(case((clips.c.alert == true(), 1), else_=0)), 0)).where(
                past_age(now_ms, keep_days, keep_days_alert)
            )
        ).one()
    return int(row[0]), int(row[1])


def prune(
    engine: Engine,
    root: Path,
    keep_days: float,
    max_bytes: int,
    now_ms: int,
    keep_days_alert: float | None = None,
) -> Pruned:
    """One pass; ``keep_days_alert`` None keeps alert clips no longer than the rest."""
    too_old = past_age(now_ms, keep_days, keep_days_alert)
    by_age = alert_by_age = freed = 0
    while True:
        with engine.connect() as conn:
            old = conn.execute(
                select(clips.c.device_id, clips.c.event_id, clips.c.bytes, clips.c.alert)
                .where(too_old)
                .order_by(clips.c.received_ms, clips.c.device_id, clips.c.event_id)
                .limit(BATCH)
            ).all()
        if not old:
            break
        freed += _drop(engine, root, [(r.device_id, int(r.event_id), int(r.bytes)) for r in old])
        by_age += len(old)
        alert_by_age += sum(1 for r in old if r.alert)
    by_bytes = alert_by_bytes = 0
    while True:
        with engine.connect() as conn:
            total = int(conn.execute(select(func.coalesce(func.sum(clips.c.bytes), 0))).scalar_one())
            if total <= max_bytes:
                break
            # false sorts before true on both databases: every other clip before any alert clip.
            oldest = conn.execute(
                select(clips.c.device_id, clips.c.event_id, clips.c.bytes, clips.c.alert)
                .order_by(clips.c.alert, clips.c.received_ms, clips.c.device_id, clips.c.event_id)
                .limit(BATCH)
            ).all()
        victims, excess = [], total - max_bytes
        for r in oldest:
            if excess <= 0:
                break
            victims.append((r.device_id, int(r.event_id), int(r.bytes)))
            excess -= int(r.bytes)
            alert_by_bytes += bool(r.alert)
        freed += _drop(engine, root, victims)
        by_bytes += len(victims)
    orphans = _orphans(engine, root, time.time())
    return Pruned(by_age, by_bytes, freed, orphans, alert_by_age, alert_by_bytes)


def _drop(engine: Engine, root: Path, victims: list[tuple[str, int, int]]) -> int:
    """One batch: the rows in one transaction, then their files."""
    if not victims:
        return 0
    with engine.begin() as conn:
        conn.execute(
            delete(clips).where(tuple_(clips.c.device_id, clips.c.event_id).in_([(d, e) for d, e, _ in victims]))
        )
    for device, event, _size in victims:
        with contextlib.suppress(FileNotFoundError, ValueError):
            files_of(root, device, event).final.unlink()
    return sum(size for _d, _e, size in victims)


def _orphans(engine: Engine, root: Path, now_s: float) -> int:
    """Files of clips with no row (a crash between the row's delete and the unlink)."""
    if not root.is_dir():
        return 0
    removed = 0
    for folder in root.iterdir():
        if folder.is_dir():
            removed += _abandoned(folder, now_s)
        files = [p for p in folder.glob("*.mp4") if p.stem.isdigit()] if folder.is_dir() else []
        if not files:
            continue
        with engine.connect() as conn:
            known = set(conn.execute(select(clips.c.event_id).where(clips.c.device_id == folder.name)).scalars())
        for p in files:
            with contextlib.suppress(FileNotFoundError):
                if int(p.stem) not in known and now_s - p.stat().st_mtime > ORPHAN_AGE_S:
                    p.unlink()
                    removed += 1
    return removed


def _abandoned(folder: Path, now_s: float) -> int:
    """Partial uploads nobody resumed: not counted in ``max_bytes``, so they would only pile up."""
    removed = 0
    for p in [*folder.glob("*.part"), *folder.glob("*.meta.json")]:
        with contextlib.suppress(FileNotFoundError):
            if now_s - p.stat().st_mtime > ABANDONED_AGE_S:
                p.unlink()
                removed += 1
    return removed


class Retention:
    """``start()`` / ``stop()``: an Extension of the hub."""

    def __init__(
        self,
        engine: Engine,
        root: str | Path,
        keep_days: float,
        max_bytes: int,
        interval_s: float,
        clock: Callable[[], float] = time.time,
        keep_days_alert: float | None = None,
    ) -> None:
        self.engine, self.root = engine, Path(root)
        self.keep_days, self.max_bytes, self.interval_s = keep_days, max_bytes, interval_s
        self.keep_days_alert = keep_days_alert
        self.clock = clock
        self._periodic = Periodic("xl-hub-clip-retention", self.interval_s, self._pass)

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def _pass(self) -> None:
        now_ms = int(self.clock() * 1000)
        done = prune(self.engine, self.root, self.keep_days, self.max_bytes, now_ms, self.keep_days_alert)
        if done.by_age or done.by_bytes or done.orphans:
            log.info(
                "clip retention: %d by age (%d of alerts), %d by bytes, %d MB freed, %d orphan files",
                done.by_age,
                done.alert_by_age,
                done.by_bytes,
                done.freed >> 20,
                done.orphans,
            )
        if done.alert_by_bytes:
            log.warning(
                "clip retention: clips.max_bytes evicted %d alert clips before clips.keep_days_alert: "
                "no other clips were left; the cap is too small for this county's alerts",
                done.alert_by_bytes,
            )

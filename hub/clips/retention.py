"""Retention of stored clips: by age (``clips.keep_days``) and by total bytes
(``clips.max_bytes``, oldest first), on a timer like the health watcher.

The row goes before the file: the console never offers a clip whose file is
half deleted, and a crash between the two leaves only an orphan file, which
the next pass removes (files with no row, older than an hour: never a clip
being indexed right now).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, delete, func, select

from hub.clips.files import files_of
from hub.clips.tables import clips
from hub.periodic import Periodic

log = logging.getLogger("xl.hub.clips")

ORPHAN_AGE_S = 3600.0
# An upload left half done (.part and its .meta.json): a device offline this long starts again from 0.
ABANDONED_AGE_S = 3 * 86_400.0
BATCH = 500


@dataclass(frozen=True, slots=True)
class Pruned:
    by_age: int
    by_bytes: int
    freed: int
    orphans: int


def prune(engine: Engine, root: Path, keep_days: float, max_bytes: int, now_ms: int) -> Pruned:
    cutoff = now_ms - int(keep_days * 86_400_000)
    with engine.connect() as conn:
        old = conn.execute(
            select(clips.c.device_id, clips.c.event_id, clips.c.bytes).where(clips.c.received_ms < cutoff)
        ).all()
    freed = _drop(engine, root, [(r.device_id, int(r.event_id), int(r.bytes)) for r in old])
    by_bytes, more = 0, 0
    while True:
        with engine.connect() as conn:
            total = int(conn.execute(select(func.coalesce(func.sum(clips.c.bytes), 0))).scalar_one())
            if total <= max_bytes:
                break
            oldest = conn.execute(
                select(clips.c.device_id, clips.c.event_id, clips.c.bytes)
                .order_by(clips.c.received_ms, clips.c.device_id, clips.c.event_id)
                .limit(BATCH)
            ).all()
        victims, excess = [], total - max_bytes
        for r in oldest:
            if excess <= 0:
                break
            victims.append((r.device_id, int(r.event_id), int(r.bytes)))
            excess -= int(r.bytes)
        more += _drop(engine, root, victims)
        by_bytes += len(victims)
    return Pruned(len(old), by_bytes, freed + more, _orphans(engine, root, time.time()))


def _drop(engine: Engine, root: Path, victims: list[tuple[str, int, int]]) -> int:
    freed = 0
    for device, event, size in victims:
        with engine.begin() as conn:
            conn.execute(delete(clips).where(clips.c.device_id == device, clips.c.event_id == event))
        with contextlib.suppress(FileNotFoundError, ValueError):
            files_of(root, device, event).final.unlink()
        freed += size
    return freed


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
    ) -> None:
        self.engine, self.root = engine, Path(root)
        self.keep_days, self.max_bytes, self.interval_s = keep_days, max_bytes, interval_s
        self.clock = clock
        self._periodic = Periodic("xl-hub-clip-retention", self.interval_s, self._pass)

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def _pass(self) -> None:
        done = prune(self.engine, self.root, self.keep_days, self.max_bytes, int(self.clock() * 1000))
        if done.by_age or done.by_bytes or done.orphans:
            log.info(
                "clip retention: %d by age, %d by bytes, %d MB freed, %d orphan files",
                done.by_age,
                done.by_bytes,
                done.freed >> 20,
                done.orphans,
            )

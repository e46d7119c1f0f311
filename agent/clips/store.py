"""The clips on the SD card and their index, ``<state_dir>/clips/index.sqlite3`` (docs/clips.md).

A clip file is written first (``.tmp``, fsync, rename) and its row second, so
after a power cut the worst case is a file without a row, which the repair at
start deletes. The repair never raises: a card that cannot be read is logged
and the agent starts without its old clips.

The budget is bytes: when the clips pass ``max_bytes`` the oldest go first,
but clips with ``keep`` (panic, person in armed hours) only once no other
clip is left. One store object is shared by the recorder thread and the
uploader, hence one connection behind a lock.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.clips.cut import sha256_of

log = logging.getLogger(__name__)

# Hashing every clip at each boot would read up to 2 GB off the SD card before
# the camera starts; a clip is fsynced before its row exists, so only the
# newest few can have been caught by a power cut, and those are hashed.
HASH_NEWEST = 4
CLIP_NAME = re.compile(r"^(\d+)\.mp4(\.tmp)?$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS clips (
    event_id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    keep INTEGER NOT NULL DEFAULT 0,
    uploaded INTEGER NOT NULL DEFAULT 0,
    detections TEXT NOT NULL DEFAULT '[]'
)
"""
COLUMNS = "event_id, kind, start_ms, end_ms, bytes, sha256, keep, uploaded, detections"


@dataclass(frozen=True, slots=True)
class Clip:
    event_id: int
    kind: str
    start_ms: int  # wall time of the first frame
    end_ms: int  # ... and of the last
    bytes: int
    sha256: str
    keep: bool = False
    uploaded: bool = False
    detections: tuple[tuple[int, ...], ...] = ()  # (t_ms wall, score %, x1, y1, x2, y2 permille)

    @classmethod
    def from_row(cls, row: Any) -> Clip:
        eid, kind, start, end, size, sha, keep, uploaded, dets = row
        return cls(eid, kind, start, end, size, sha, bool(keep), bool(uploaded), tuple(map(tuple, json.loads(dets))))


class ClipStore:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.dir = directory
        self.max_bytes = max_bytes
        self.repaired: list[str] = []  # what the repair at start did, for the log and tests
        self._lock = threading.Lock()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._db = self._open()
        try:
            self._repair()
        except sqlite3.DatabaseError as exc:  # a torn or garbled index: start a new one
            self._set_aside(exc)
            self._repair()
        self.count, self.bytes = self._totals()
        self.evict()

    def path_of(self, event_id: int) -> Path:
        return self.dir / f"{event_id}.mp4"

    # -- opening and repair ----------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.dir / "index.sqlite3", check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # one write per clip: cheap, and the row survives a cut
            db.execute("PRAGMA busy_timeout=5000")
            db.execute(SCHEMA)
        except sqlite3.DatabaseError as exc:
            db.close()
            self._set_aside(exc, reopen=False)
            return self._open()
        return db

    def _set_aside(self, exc: Exception, reopen: bool = True) -> None:
        log.warning("clips: index unreadable (%s): starting a new one", exc)
        self.repaired.append(f"index set aside: {exc}")
        if reopen:
            self._db.close()
        index = self.dir / "index.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            p = index.with_name(index.name + suffix)
            if p.exists():
                p.replace(p.with_name(p.name + ".corrupt"))
        if reopen:
            self._db = self._open()

    def _repair(self) -> None:
        files: dict[int, Path] = {}
        for path in self.dir.iterdir():
            m = CLIP_NAME.match(path.name)
            if m is None:
                continue
            if m.group(2):  # an interrupted remux
                self._forget_file(path, "interrupted")
            else:
                files[int(m.group(1))] = path
        rows = self._db.execute("SELECT event_id, bytes, sha256 FROM clips ORDER BY rowid DESC").fetchall()
        for n, (event_id, size, sha) in enumerate(rows):
            found = files.pop(event_id) if event_id in files else None
            why = None
            if found is None:
                why = "file missing"
            elif found.stat().st_size != size:
                why = "size differs"
            elif n < HASH_NEWEST and sha256_of(found) != sha:
                why = "sha256 differs"
            if why is not None:
                self._db.execute("DELETE FROM clips WHERE event_id = ?", (event_id,))
                self.repaired.append(f"row {event_id}: {why}")
                if found is not None:
                    self._forget_file(found, why)
        for path in files.values():
            self._forget_file(path, "no row")

    def _forget_file(self, path: Path, why: str) -> None:
        self.repaired.append(f"{path.name}: {why}")
        try:
            path.unlink()
        except OSError as exc:
            log.warning("clips: cannot remove %s: %s", path, exc)

    def _totals(self) -> tuple[int, int]:
        count, total = self._db.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM clips").fetchone()
        return int(count), int(total)

    # -- use ---------------------------------------------------------------------

    def add(self, clip: Clip) -> list[int]:
        """Index a clip whose file is in place; returns the event ids the budget evicted."""
        dets = json.dumps([list(d) for d in clip.detections], separators=(",", ":"))
        with self._lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO clips ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (clip.event_id, clip.kind, clip.start_ms, clip.end_ms, clip.bytes, clip.sha256,
                 int(clip.keep), int(clip.uploaded), dets),
            )  # fmt: skip
            self.count, self.bytes = self._totals()
        return self.evict()

    def evict(self) -> list[int]:
        """Delete clips, oldest first and keep=1 last, until the total fits ``max_bytes``."""
        gone = []
        with self._lock:
            while self.bytes > self.max_bytes:
                row = self._db.execute(
                    "SELECT event_id FROM clips ORDER BY keep, start_ms, event_id LIMIT 1"
                ).fetchone()
                if row is None:
                    break
                self._db.execute("DELETE FROM clips WHERE event_id = ?", row)
                self.path_of(row[0]).unlink(missing_ok=True)
                gone.append(int(row[0]))
                self.count, self.bytes = self._totals()
        if gone:
            log.info("clips: budget %d bytes: evicted %s", self.max_bytes, gone)
        return gone

    def get(self, event_id: int) -> Clip | None:
        with self._lock:
            row = self._db.execute(f"SELECT {COLUMNS} FROM clips WHERE event_id = ?", (event_id,)).fetchone()
        return Clip.from_row(row) if row else None

    def all(self) -> list[Clip]:
        with self._lock:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM clips ORDER BY start_ms, event_id").fetchall()
        return [Clip.from_row(r) for r in rows]

    def mark_uploaded(self, event_id: int) -> None:
        with self._lock:
            self._db.execute("UPDATE clips SET uploaded = 1 WHERE event_id = ?", (event_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()

"""The durable outbox: every event, snapshot and ack waits here until the hub's
end-to-end receipt says it is committed (agent/delivery.py).

SQLite in WAL mode on the SD card. Durability choice, with power cuts in mind:

* Inserts commit with ``synchronous=FULL``: WAL+FULL fsyncs the WAL on every
  commit, so an event that ``put`` returned for survives a power cut. It costs
  one fsync per event; a household camera makes a few events a minute, and a
  panic press must never be the transaction a power cut eats (NORMAL can lose
  the last commits, though it never corrupts).
* Deletes (after the receipt) commit with ``synchronous=NORMAL``: losing a delete
  to a power cut only re-sends a message the hub already has, and the hub
  dedups by (device, event id, phase). That halves the fsyncs while draining
  a long backlog after an outage.

The outbox is bounded by rows and bytes. When full it drops the lowest
priority first and, within a priority, the oldest: motion snapshots, then
motion events and person snapshots, then person events and acks. Panic is
never dropped. Drops are counted in the database so the count survives restarts
and reaches the heartbeat (``obd``).

When the card is full or failing, ``put`` does not raise: the message waits in
a small memory overflow, ``error`` says why for the heartbeat, and every later
``put``/``pending`` tries to write the overflow again.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Drop order: the lowest number goes first. PANIC is never dropped.
MOTION_SNAP = 0
MOTION = 1
PERSON_SNAP = 1
PERSON = 2
ACK = 2
PANIC = 3

OVERFLOW_MAX = 256  # messages kept in memory while the card refuses writes
RETRY_S = 5.0  # how often the drain loop tries the card again while it refuses writes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    kind TEXT NOT NULL,
    created_mono REAL NOT NULL,
    created_wall INTEGER NOT NULL,
    size INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_drop_order ON outbox (priority, seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('dropped', 0);
"""


@dataclass(frozen=True, slots=True)
class Message:
    seq: int
    topic: str
    payload: bytes
    qos: int
    priority: int
    kind: str


def is_urgent(m: Message) -> bool:
    """Sent first, and worth waking the link for: a panic, or an ack."""
    return m.priority >= PANIC or m.kind == "ack"


@dataclass(frozen=True, slots=True)
class _Pending:
    topic: str
    payload: bytes
    qos: int
    priority: int
    kind: str
    mono: float
    wall: int
    mem_seq: int = 0  # negative while the message lives only in memory


class Outbox:
    def __init__(self, path: Path, max_rows: int = 20_000, max_bytes: int = 64 << 20) -> None:
        self.path = path
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.error: str | None = None
        self._lock = threading.RLock()
        self._overflow: collections.deque[_Pending] = collections.deque()
        self._overflow_dropped = 0
        self._mem_seq = 0
        self._last_try = 0.0
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are explicit BEGIN IMMEDIATE ... COMMIT.
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        new = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone() is None
        self._db.executescript(_SCHEMA)
        if new:
            # Row numbers ("q") start again at 1 in a new outbox (a reflashed SD card), so a
            # receipt the broker still holds for the old one would free the wrong rows.
            self._db.execute("INSERT OR REPLACE INTO counters VALUES ('numbering_new', 1)")
        rows, size = self._db.execute("SELECT count(*), coalesce(sum(size), 0) FROM outbox").fetchone()
        self._rows, self._bytes = int(rows), int(size)

    # -- writing ---------------------------------------------------------

    def put(self, topic: str, payload: bytes, *, priority: int, kind: str, qos: int = 1) -> bool:
        """Store a message durably; False when it went to the memory overflow."""
        item = _Pending(topic, bytes(payload), qos, priority, kind, time.monotonic(), time.time_ns() // 1_000_000)
        with self._lock:
            self._flush_overflow(force=True)
            if self._overflow:
                self._keep_in_memory(item)
                return False
            try:
                self._insert([item])
            except sqlite3.Error as exc:
                self._failed(exc)
                self._keep_in_memory(item)
                return False
            return True

    def _insert(self, items: Sequence[_Pending]) -> None:
        self._db.execute("PRAGMA synchronous=FULL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            for it in items:
                self._db.execute(
                    "INSERT INTO outbox (topic, payload, qos, priority, kind, created_mono, created_wall,"
                    " size)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (it.topic, it.payload, it.qos, it.priority, it.kind, it.mono, it.wall, len(it.payload)),
                )
            rows = self._rows + len(items)
            size = self._bytes + sum(len(it.payload) for it in items)
            rows, size = self._enforce_bounds(rows, size)
            self._db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        self._rows, self._bytes = rows, size
        if self.error is not None and not self._overflow:
            self.error = None

    def _enforce_bounds(self, rows: int, size: int) -> tuple[int, int]:
        """Inside the insert's transaction: drop by (priority, seq) until within bounds."""
        if rows <= self.max_rows and size <= self.max_bytes:
            return rows, size
        dropped = 0
        cursor = self._db.execute("SELECT seq, size FROM outbox WHERE priority < ? ORDER BY priority, seq", (PANIC,))
        victims: list[int] = []
        for seq, row_size in cursor:
            if rows <= self.max_rows and size <= self.max_bytes:
                break
            victims.append(seq)
            rows -= 1
            size -= row_size
            dropped += 1
        cursor.close()
        self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(s,) for s in victims])
        self._db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (dropped,))
        return rows, size

    def _failed(self, exc: sqlite3.Error) -> None:
        text = str(exc)
        reason = "disk full" if "full" in text else text[:80]
        self.error = f"outbox write failed: {reason}"

    def _keep_in_memory(self, item: _Pending) -> None:
        self._mem_seq -= 1
        self._overflow.append(dataclasses.replace(item, mem_seq=self._mem_seq))
        while len(self._overflow) > OVERFLOW_MAX:
            # Same drop order as on disk, but never a panic.
            victims = [i for i, p in enumerate(self._overflow) if p.priority < PANIC]
            if not victims:
                break
            lowest = min(victims, key=lambda i: (self._overflow[i].priority, i))
            del self._overflow[lowest]
            self._overflow_dropped += 1

    def _flush_overflow(self, force: bool = False) -> None:
        if not self._overflow:
            return
        now = time.monotonic()
        if not force and now - self._last_try < RETRY_S:
            return
        self._last_try = now
        try:
            self._insert(list(self._overflow))
        except sqlite3.Error as exc:
            self._failed(exc)
            return
        self._overflow.clear()
        if self._overflow_dropped:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute(
                    "UPDATE counters SET value = value + ? WHERE name = 'dropped'", (self._overflow_dropped,)
                )
                self._overflow_dropped = 0
        self.error = None

    def retry(self, force: bool = False) -> None:
        """Try again (at most every RETRY_S unless forced) to write what the card refused."""
        with self._lock:
            self._flush_overflow(force)

    # -- draining --------------------------------------------------------

    def pending(self, limit: int, exclude: Iterable[int] = ()) -> list[Message]:
        """The next messages to send: urgent first (panics, and acks: a neighbour's
        response time is taken when the ack arrives), then strictly by seq.

        Messages stuck in the memory overflow (the card refused them) are sent
        too, after the stored ones they are newer than; their seq is negative.
        """
        skip = list(exclude)
        with self._lock:
            self._flush_overflow()
            marks = ",".join("?" * len(skip))
            not_in = f"AND seq NOT IN ({marks})" if skip else ""
            # Two index-ordered queries rather than one ORDER BY over the whole
            # table: after a long outage the table has thousands of rows.
            rows: dict[bool, list[Message]] = {}
            for urgent in (True, False):
                found = self._db.execute(
                    f"SELECT seq, topic, payload, qos, priority, kind FROM outbox"
                    f" WHERE {'' if urgent else 'NOT'} (priority >= ? OR kind = 'ack') {not_in}"
                    f" ORDER BY seq LIMIT ?",
                    (PANIC, *skip, limit),
                ).fetchall()
                rows[urgent] = [Message(sq, t, bytes(pl), q, pr, k) for sq, t, pl, q, pr, k in found]
            mem = [
                Message(p.mem_seq, p.topic, p.payload, p.qos, p.priority, p.kind)
                for p in self._overflow
                if p.mem_seq not in skip
            ]
        mem_urgent = [m for m in mem if is_urgent(m)]
        mem_rest = [m for m in mem if not is_urgent(m)]
        return (rows[True] + mem_urgent + rows[False] + mem_rest)[:limit]

    def get(self, seqs: Iterable[int]) -> list[Message]:
        """Stored messages by seq (to send again), in seq order; gone ones are left out."""
        wanted = [s for s in seqs if s > 0]
        if not wanted:
            return []
        with self._lock:
            found = self._db.execute(
                f"SELECT seq, topic, payload, qos, priority, kind FROM outbox WHERE seq IN"
                f" ({','.join('?' * len(wanted))}) ORDER BY seq",
                wanted,
            ).fetchall()
        return [Message(sq, t, bytes(pl), q, pr, k) for sq, t, pl, q, pr, k in found]

    def sizes(self, seqs: Iterable[int]) -> dict[int, int]:
        wanted = [s for s in seqs if s > 0]
        if not wanted:
            return {}
        with self._lock:
            found = self._db.execute(
                f"SELECT seq, size FROM outbox WHERE seq IN ({','.join('?' * len(wanted))})", wanted
            ).fetchall()
        return {int(sq): int(size) for sq, size in found}

    def delete_ranges(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Forget what the hub's receipt says it has committed (inclusive seq ranges)."""
        spans = [(lo, hi) for lo, hi in ranges if hi > 0]
        if spans:
            self._delete("DELETE FROM outbox WHERE seq BETWEEN ? AND ? RETURNING size", spans)

    def delete(self, seqs: Iterable[int]) -> None:
        """Forget messages by seq (those sent without an outbox number, on their PUBACK)."""
        wanted = list(seqs)
        with self._lock:
            gone = {s for s in wanted if s < 0}
            if gone:
                self._overflow = collections.deque(p for p in self._overflow if p.mem_seq not in gone)
                if not self._overflow:
                    self.error = None
        keys = [(s,) for s in wanted if s > 0]
        if keys:
            self._delete("DELETE FROM outbox WHERE seq = ? RETURNING size", keys)

    def _delete(self, sql: str, params: Sequence[tuple[int, ...]]) -> None:
        with self._lock:
            try:
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("BEGIN IMMEDIATE")
                removed = 0
                freed = 0
                for p in params:
                    for (size,) in self._db.execute(sql, p).fetchall():
                        removed += 1
                        freed += size
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                # The row stays and is sent again later: a duplicate, never a loss.
                self._failed(exc)
                return
            finally:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("PRAGMA synchronous=FULL")
            self._rows -= removed
            self._bytes -= freed

    # -- numbers for the heartbeat ---------------------------------------

    @property
    def depth(self) -> int:
        with self._lock:
            return self._rows + len(self._overflow)

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    @property
    def dropped(self) -> int:
        with self._lock:
            try:
                (value,) = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
            except sqlite3.Error:
                value = 0
            return int(value) + self._overflow_dropped

    def numbering_is_new(self) -> bool:
        """True until the link has once connected with a clean session for this outbox."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'numbering_new'").fetchone()
        return bool(row and row[0])

    def numbering_announced(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM counters WHERE name = 'numbering_new'")

    @property
    def last_boot(self) -> int:
        """A second copy of the boot counter (the floor for agent.bootcount), -1 if none."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'boot'").fetchone()
            return -1 if row is None else int(row[0])

    def set_boot(self, boot: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO counters VALUES ('boot', ?)", (boot,))

    def integrity_ok(self) -> bool:
        with self._lock:
            return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._flush_overflow()
            self._db.close()

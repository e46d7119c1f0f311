"""One retention pass: each data class deleted at its own age, in small batches.

Why batches: ingest writes the same tables from another thread (and other hub
workers). One batch is one short transaction of at most ``batch`` rows found
through an index, then ``pause_s`` of nothing, so a backlog of millions (the
first pass on an old database) drains over minutes without ever holding locks
or the SQLite write lock for long (bench/retention_ingest.py measures it).

What is kept past its age ("held"), and why:

- **events an open alert names** (``alerts.status = 'open'``): the
  neighbourhood is still answering it;
- **events and snapshots still waiting to be forwarded** (a ``forward_outbox``
  row in state pending or dead with the event's item key): the platform is
  owed them, and the outbox rows themselves are never touched here (the
  forwarder deletes delivered ones 7 days after delivery);
- **events whose clip is still kept**: the clip's own retention decides
  (``clips.keep_days*``), the event goes at the next pass after its clip;
- **snapshots of events that raised an alert** (any ``alerts`` row): evidence,
  kept as long as their event (``retention.events_days``), not
  ``snapshots_days``.

A deleted event takes its snapshot with it, in the same transaction. Nothing
else refers to an event row by its id. Alert rows (with the device's event
number) are not a class here: they are the county's response record.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    String,
    Table,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    exists,
    false,
    func,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from hub.clips.tables import clips
from hub.config_retention import RetentionConfig
from hub.console.tables import console_audit
from hub.db.schema_ops import alerts, events, health_history, snapshots
from hub.forward.tables import STATE_DONE, forward_outbox, forward_sinks
from hub.rollout.tables import rollout_audit

DAY_MS = 86_400_000
CLASSES = ("events", "snapshots", "health", "audit")
YIELD = 4.0


@dataclass
class Tally:
    due: int = 0  # rows past the class's age
    deleted: int = 0  # of them, deleted (a dry run: that would be)
    held: int = 0  # of them, kept for a reason above
    batches: int = 0


@dataclass
class Pass:
    tallies: dict[str, Tally] = field(default_factory=lambda: {name: Tally() for name in CLASSES})
    stopped: bool = False  # the hub stopped in the middle: the next pass carries on

    @property
    def deleted(self) -> int:
        return sum(t.deleted for t in self.tallies.values())


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class Pruner:
    """``run()`` is one pass; ``wait(s)`` is the pause between batches and
    returns True when the hub is stopping (the job passes its stop event's wait)."""

    def __init__(
        self,
        engine: Engine,
        cfg: RetentionConfig,
        *,
        clock: Callable[[], float] = time.time,
        wait: Callable[[float], bool] = _sleep,
    ) -> None:
        self.engine, self.cfg, self.clock, self.wait = engine, cfg, clock, wait

    def run(self, *, dry_run: bool = False) -> Pass:
        now_ms = int(self.clock() * 1000)
        done = Pass()
        self._snaps = done.tallies["snapshots"]
        # A dry run deletes nothing, so the snapshot step would find again the pictures the
        # event step already counted as going with their events: it skips these ids.
        self._counted: set[int] = set()
        steps: list[tuple[str, Callable[[int, bool, Tally], bool]]] = [
            ("events", self._events),
            ("snapshots", self._snapshots),
            ("health", self._health),
            ("audit", self._audit),
        ]
        for name, step in steps:
            days = {
                "events": self.cfg.events_days,
                "snapshots": self.cfg.snapshots_days,
                "health": self.cfg.health_days,
                "audit": self.cfg.audit_days,
            }[name]
            if step(now_ms - int(days * DAY_MS), dry_run, done.tallies[name]):
                done.stopped = True
                break
        return done

    def _pause(self, dry_run: bool, took_s: float) -> bool:
        """The pause after a batch: ``pause_s``, and at least ``YIELD`` times what the batch
        took, so a slow (busy) database gets longer pauses and pruning stays under about a
        fifth of one connection's time whatever the machine."""
        # A dry run writes nothing, so it has nobody to make room for.
        return False if dry_run else self.wait(max(self.cfg.pause_s, YIELD * took_s))

    # -- events -----------------------------------------------------------------

    def _events(self, cutoff: int, dry_run: bool, tally: Tally) -> bool:
        e = events
        after: tuple[int, int] | None = None
        while True:
            began = time.monotonic()
            with self.engine.begin() as conn:
                # The holds are read in the deleting transaction (an alert or outbox row committed
                # since counts) and in SQL, one index probe each per row: in Python, with lists of
                # 2,000 keys, they cost ingest (same process, same GIL) a tenth of its rate.
                sinks = _sinks(conn)
                held = or_(_open_alert(e.c.device_id, e.c.event_id), _clip_kept(e), _waiting(e, sinks))
                q = (
                    select(e.c.id, e.c.time_ms, snapshots.c.id.label("snap_id"), held.label("held"))
                    .outerjoin(
                        snapshots,
                        and_(
                            snapshots.c.device_id == e.c.device_id,
                            snapshots.c.event_id == e.c.event_id,
                            snapshots.c.phase == e.c.phase,
                        ),
                    )
                    .where(e.c.time_ms < cutoff)
                )
                if after is not None:  # keyset: held rows are not read again within a pass
                    q = q.where(e.c.time_ms >= after[0], or_(e.c.time_ms > after[0], e.c.id > after[1]))
                rows = conn.execute(q.order_by(e.c.time_ms, e.c.id).limit(self.cfg.batch)).all()
                if not rows:
                    return False
                after = (int(rows[-1].time_ms), int(rows[-1].id))
                victims = [int(r.id) for r in rows if not r.held]
                snaps = [int(r.snap_id) for r in rows if not r.held and r.snap_id is not None]
                self._snaps.due += len(snaps)  # a picture goes with its event, whatever its own age
                self._snaps.deleted += len(snaps)
                if dry_run:
                    self._counted.update(snaps)
                elif victims:
                    if snaps:
                        conn.execute(delete(snapshots).where(_among(conn, snapshots.c.id, snaps)))
                    conn.execute(delete(e).where(_among(conn, e.c.id, victims)))
            tally.due += len(rows)
            tally.deleted += len(victims)
            tally.held += len(rows) - len(victims)
            tally.batches += 1
            # A short batch was the last; after a full one, the pause may find the hub stopping (True).
            if len(rows) < self.cfg.batch or self._pause(dry_run, time.monotonic() - began):
                return len(rows) == self.cfg.batch

    # -- snapshots --------------------------------------------------------------

    def _snapshots(self, cutoff: int, dry_run: bool, tally: Tally) -> bool:
        s = snapshots
        after: tuple[int, int] | None = None
        while True:
            began = time.monotonic()
            with self.engine.begin() as conn:
                sinks = _sinks(conn)
                held = or_(_raised_alert(s.c.device_id, s.c.event_id), _waiting(s, sinks))
                q = select(s.c.id, s.c.received_ms, held.label("held")).where(s.c.received_ms < cutoff)
                if after is not None:
                    q = q.where(s.c.received_ms >= after[0], or_(s.c.received_ms > after[0], s.c.id > after[1]))
                rows = conn.execute(q.order_by(s.c.received_ms, s.c.id).limit(self.cfg.batch)).all()
                if not rows:
                    return False
                after, fetched = (int(rows[-1].received_ms), int(rows[-1].id)), len(rows)
                rows = [r for r in rows if int(r.id) not in self._counted]
                victims = [int(r.id) for r in rows if not r.held]
                if victims and not dry_run:
                    conn.execute(delete(s).where(_among(conn, s.c.id, victims)))
            tally.due += len(rows)
            tally.deleted += len(victims)
            tally.held += len(rows) - len(victims)
            tally.batches += 1
            if fetched < self.cfg.batch or self._pause(dry_run, time.monotonic() - began):
                return fetched == self.cfg.batch

    # -- health history and the audit logs: no row is held -----------------------

    def _health(self, cutoff: int, dry_run: bool, tally: Tally) -> bool:
        h = health_history
        old = select(h.c.device_id, h.c.bucket_ms).where(h.c.bucket_ms < cutoff).limit(self.cfg.batch)
        return self._by_batch(
            delete(h).where(tuple_(h.c.device_id, h.c.bucket_ms).in_(old)), h, h.c.bucket_ms < cutoff, dry_run, tally
        )

    def _audit(self, cutoff: int, dry_run: bool, tally: Tally) -> bool:
        for table in (console_audit, rollout_audit):
            old = select(table.c.id).where(table.c.at_ms < cutoff).order_by(table.c.at_ms).limit(self.cfg.batch)
            stopped = self._by_batch(
                delete(table).where(table.c.id.in_(old)), table, table.c.at_ms < cutoff, dry_run, tally
            )
            if stopped:
                return True
        return False

    def _by_batch(self, stmt: Any, table: Any, too_old: ColumnElement[bool], dry_run: bool, tally: Tally) -> bool:
        if dry_run:
            with self.engine.connect() as conn:
                n = int(conn.execute(select(func.count()).select_from(table).where(too_old)).scalar_one())
            tally.due += n
            tally.deleted += n
            tally.batches += -(-n // self.cfg.batch)
            return False
        while True:
            began = time.monotonic()
            with self.engine.begin() as conn:
                n = int(conn.execute(stmt).rowcount)
            tally.due += n
            tally.deleted += n
            tally.batches += 1 if n else 0
            if n < self.cfg.batch or self._pause(dry_run, time.monotonic() - began):
                return n == self.cfg.batch


def _among(conn: Connection, column: ColumnElement[Any], ids: list[int]) -> ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL one array parameter (``= ANY``): the same
    statement text for every batch, prepared once, instead of 2,000 placeholders
    rendered and parsed each time."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam("ids", ids, type_=ARRAY(BigInteger)))
    return column.in_(ids)


def _sinks(conn: Connection) -> list[str]:
    return list(conn.execute(select(forward_sinks.c.sink)).scalars())


def _item_key(t: Table) -> ColumnElement[Any]:
    """The forward outbox's item key of an event phase, in SQL (hub.core.items.EventItem.key)."""
    return t.c.device_id + "-" + cast(t.c.event_id, String) + "-" + t.c.phase


def _waiting(t: Table, sinks: list[str]) -> ColumnElement[bool]:
    """An outbox row not yet delivered (pending, or dead until an operator retries
    or gives it up). The sinks are named so the (sink, item_key) unique index
    serves the probe."""
    if not sinks:
        return false()
    o = forward_outbox
    return exists().where(o.c.sink.in_(sinks), o.c.item_key == _item_key(t), o.c.state != STATE_DONE)


def _open_alert(device: Any, event_id: Any) -> ColumnElement[bool]:
    a = alerts
    return exists().where(a.c.origin_device == device, a.c.event_id == event_id, a.c.status == "open")


def _raised_alert(device: Any, event_id: Any) -> ColumnElement[bool]:
    return exists().where(alerts.c.origin_device == device, alerts.c.event_id == event_id)


def _clip_kept(e: Table) -> ColumnElement[bool]:
    return exists().where(clips.c.device_id == e.c.device_id, clips.c.event_id == e.c.event_id)

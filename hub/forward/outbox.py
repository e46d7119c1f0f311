"""Database operations on the forward outbox (SQLAlchemy Core, SQLite and PostgreSQL).

Every function takes a Connection so the caller owns the transaction: ingest
enqueues inside its own commit, the forwarder keeps each state change short
and never holds a transaction open across an HTTP request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from hub.core.items import ClipItem, EscalationItem, EventItem, ForwardItem, item_to_json
from hub.db.bulk import insert_new
from hub.forward.tables import (
    STATE_DEAD,
    STATE_DONE,
    STATE_PENDING,
    forward_leases,
    forward_outbox,
    forward_sinks,
)

MAX_ERROR_LEN = 500


@dataclass(frozen=True, slots=True)
class SinkStats:
    sink: str
    depth: int  # pending items
    oldest_age_s: float  # age of the oldest pending item; 0 when the queue is empty
    dead: int  # dead letters kept for operators
    head_attempts: int  # attempts on the item at the head of the queue
    head_error: str | None  # why the head last failed, if it did


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    sink: str
    seq: int
    item_key: str
    item_type: str
    created_ms: int
    dead_ms: int | None
    attempts: int
    last_error: str | None


def ensure_sinks(engine: Engine, names: Iterable[str]) -> None:
    """Create the counter and lease rows of each sink, tolerating a racing worker."""
    for name in names:
        for table in (forward_sinks, forward_leases):
            with engine.connect() as conn:
                exists = conn.execute(select(table.c.sink).where(table.c.sink == name)).first() is not None
                conn.rollback()
                if exists:
                    continue
                try:
                    with conn.begin():
                        conn.execute(table.insert().values(sink=name))
                except IntegrityError:
                    pass  # another worker created it between our check and insert


_OUTBOX_COLUMNS = (
    ("sink", "varchar"),
    ("seq", "bigint"),
    ("item_key", "varchar"),
    ("item_type", "varchar"),
    ("payload", "text"),
    ("state", "varchar"),
    ("created_ms", "bigint"),
    ("age_from_ms", "bigint"),
    ("attempts", "integer"),
    ("next_attempt_ms", "bigint"),
)


def enqueue_many(conn: Connection, sink: str, items: Sequence[ForwardItem], now_ms: int) -> list[ForwardItem]:
    """Queue ``items`` for ``sink`` in their order; returns the items that got a new row.

    An item already queued for the sink (same idempotency key, stored before or
    earlier in ``items``) is skipped, so an at-least-once redelivery that
    reaches this call twice forwards once. Three statements per call, whatever
    the number of items: ingest queues a whole batch at once.
    """
    if not items:
        return []
    # The UPDATE comes first on purpose: it takes the counter's row lock (and
    # SQLite's write lock) before the insert, so concurrent transactions get
    # disjoint sequence ranges in commit order. A skipped duplicate burns a
    # sequence number, which is harmless: order is by seq, not contiguity.
    n = len(items)
    bumped = conn.execute(
        update(forward_sinks).where(forward_sinks.c.sink == sink).values(next_seq=forward_sinks.c.next_seq + n)
    )
    if bumped.rowcount != 1:
        raise LookupError(f"forward sink {sink!r} is not set up (Forwarder() creates it)")
    first_seq = int(conn.execute(select(forward_sinks.c.next_seq).where(forward_sinks.c.sink == sink)).scalar_one()) - n
    rows, by_key = [], {}
    for offset, item in enumerate(items):
        if item.key in by_key:
            continue
        by_key[item.key] = item
        rows.append(
            (
                sink,
                first_seq + offset,
                item.key,
                _item_type(item),
                item_to_json(item),
                STATE_PENDING,
                now_ms,
                now_ms,
                0,
                now_ms,
            )
        )
    # The unique (sink, item_key) key is the duplicate check: an item queued by
    # an earlier delivery of the same message is skipped by the database.
    new_keys = {
        r[0] for r in insert_new(conn, "forward_outbox", _OUTBOX_COLUMNS, rows, ("sink", "item_key"), ("item_key",))
    }
    return [item for key, item in by_key.items() if key in new_keys]


def _item_type(item: ForwardItem) -> str:
    if isinstance(item, EscalationItem):
        return "escal"  # the column is 8 wide
    return "event" if isinstance(item, EventItem) else "clip" if isinstance(item, ClipItem) else "alert"


def head(conn: Connection, sink: str) -> Row[Any] | None:
    """The pending item with the lowest sequence: the only one that may be sent."""
    return conn.execute(
        select(forward_outbox)
        .where(and_(forward_outbox.c.sink == sink, forward_outbox.c.state == STATE_PENDING))
        .order_by(forward_outbox.c.seq)
        .limit(1)
    ).first()


def _pending(row_id: int):  # type: ignore[no-untyped-def]
    # Guards every transition: an operator may have changed the row meanwhile.
    return and_(forward_outbox.c.id == row_id, forward_outbox.c.state == STATE_PENDING)


def mark_done(conn: Connection, row_id: int, now_ms: int) -> None:
    conn.execute(
        update(forward_outbox)
        .where(_pending(row_id))
        .values(
            state=STATE_DONE,
            done_ms=now_ms,
            last_attempt_ms=now_ms,
            attempts=forward_outbox.c.attempts + 1,
            last_error=None,
        )
    )


def mark_retry(conn: Connection, row_id: int, now_ms: int, error: str, next_attempt_ms: int) -> None:
    conn.execute(
        update(forward_outbox)
        .where(_pending(row_id))
        .values(
            attempts=forward_outbox.c.attempts + 1,
            last_attempt_ms=now_ms,
            last_error=error[:MAX_ERROR_LEN],
            next_attempt_ms=next_attempt_ms,
        )
    )


def mark_dead(conn: Connection, row_id: int, now_ms: int, error: str) -> None:
    conn.execute(
        update(forward_outbox)
        .where(_pending(row_id))
        .values(
            state=STATE_DEAD,
            dead_ms=now_ms,
            attempts=forward_outbox.c.attempts + 1,
            last_attempt_ms=now_ms,
            last_error=error[:MAX_ERROR_LEN],
        )
    )


def acquire_lease(engine: Engine, sink: str, owner: str, now_ms: int, ttl_ms: int) -> bool:
    """Take or renew the right to send for ``sink`` until now + ttl (one conditional UPDATE)."""
    with engine.begin() as conn:
        result = conn.execute(
            update(forward_leases)
            .where(
                and_(
                    forward_leases.c.sink == sink,
                    or_(forward_leases.c.owner == owner, forward_leases.c.until_ms < now_ms),
                )
            )
            .values(owner=owner, until_ms=now_ms + ttl_ms)
        )
        return result.rowcount == 1


def release_lease(engine: Engine, sink: str, owner: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(forward_leases)
            .where(and_(forward_leases.c.sink == sink, forward_leases.c.owner == owner))
            .values(owner=None, until_ms=0)
        )


def sink_stats(conn: Connection, sink: str, now_ms: int) -> SinkStats:
    o = forward_outbox
    depth, oldest = conn.execute(
        select(func.count(), func.min(o.c.created_ms)).where(and_(o.c.sink == sink, o.c.state == STATE_PENDING))
    ).one()
    dead = conn.execute(select(func.count()).where(and_(o.c.sink == sink, o.c.state == STATE_DEAD))).scalar_one()
    first = head(conn, sink)
    return SinkStats(
        sink=sink,
        depth=int(depth),
        oldest_age_s=max(0.0, (now_ms - int(oldest)) / 1000.0) if oldest is not None else 0.0,
        dead=int(dead),
        head_attempts=int(first.attempts) if first is not None else 0,
        head_error=first.last_error if first is not None else None,
    )


def dead_letters(conn: Connection, sink: str | None = None, limit: int = 100) -> list[DeadLetter]:
    o = forward_outbox
    query = select(o).where(o.c.state == STATE_DEAD)
    if sink is not None:
        query = query.where(o.c.sink == sink)
    rows = conn.execute(query.order_by(o.c.sink, o.c.seq).limit(limit)).all()
    return [
        DeadLetter(
            id=int(r.id),
            sink=r.sink,
            seq=int(r.seq),
            item_key=r.item_key,
            item_type=r.item_type,
            created_ms=int(r.created_ms),
            dead_ms=r.dead_ms,
            attempts=int(r.attempts),
            last_error=r.last_error,
        )
        for r in rows
    ]


def retry_dead(conn: Connection, ids: Iterable[int], now_ms: int) -> int:
    """Put dead letters back in their queue. They keep their sequence number, so
    they go out before anything queued after them, and get a fresh age window."""
    id_list = [int(i) for i in ids]
    if not id_list:
        return 0
    result = conn.execute(
        update(forward_outbox)
        .where(and_(forward_outbox.c.id.in_(id_list), forward_outbox.c.state == STATE_DEAD))
        .values(
            state=STATE_PENDING,
            attempts=0,
            next_attempt_ms=now_ms,
            age_from_ms=now_ms,
            dead_ms=None,
        )
    )
    return int(result.rowcount)


def purge_done(conn: Connection, before_ms: int, limit: int = 1000) -> int:
    """Delete delivered rows older than ``before_ms`` (in batches, to keep locks short)."""
    o = forward_outbox
    ids = (
        conn.execute(select(o.c.id).where(and_(o.c.state == STATE_DONE, o.c.done_ms < before_ms)).limit(limit))
        .scalars()
        .all()
    )
    if not ids:
        return 0
    return int(conn.execute(o.delete().where(o.c.id.in_(ids))).rowcount)

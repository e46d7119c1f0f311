"""Forward outbox tables (their migrations: the ``forward`` branch, hub/forward/migrations).

``forward_sinks`` holds one row per sink with the next sequence number. Taking
that number in the ingest transaction row-locks the counter until commit, so
sequence order is commit order: a reader can never see item N+1 committed
while item N is still in flight in another transaction (a plain autoincrement
id would allow that on PostgreSQL and break head-of-line order). The cost is
that ingest transactions enqueueing to the same sink serialise on their last
statement, which is cheap next to the event insert itself.

``forward_leases`` lets several hub workers run forwarders against one
database while only one of them sends for a given sink at a time; it is a
separate table so lease renewals never wait on the counter lock ingest holds.

Times are integer ms since the epoch, like the rest of the hub schema.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias).
_BigId = BigInteger().with_variant(Integer(), "sqlite")

STATE_PENDING = "pending"
STATE_DONE = "done"
STATE_DEAD = "dead"

forward_sinks = Table(
    "forward_sinks",
    metadata,
    Column("sink", String(32), primary_key=True),
    Column("next_seq", BigInteger, nullable=False, server_default="1"),
)

forward_leases = Table(
    "forward_leases",
    metadata,
    Column("sink", String(32), primary_key=True),
    Column("owner", String(64), nullable=True),
    Column("until_ms", BigInteger, nullable=False, server_default="0"),
)

forward_outbox = Table(
    "forward_outbox",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("sink", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("item_key", String(96), nullable=False),  # idempotency key of the item
    Column("item_type", String(8), nullable=False),  # event | alert | clip (for the console)
    Column("payload", Text, nullable=False),  # items.item_to_json
    Column("state", String(8), nullable=False, server_default=STATE_PENDING),
    Column("created_ms", BigInteger, nullable=False),
    # The dead-letter age counts from here; retry_dead() resets it so a revived
    # item gets a full new window instead of dying at its first failure.
    Column("age_from_ms", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_ms", BigInteger, nullable=False),
    Column("last_attempt_ms", BigInteger, nullable=True),
    Column("last_error", String(500), nullable=True),
    Column("done_ms", BigInteger, nullable=True),
    Column("dead_ms", BigInteger, nullable=True),
    UniqueConstraint("sink", "seq", name="uq_forward_sink_seq"),
    UniqueConstraint("sink", "item_key", name="uq_forward_sink_key"),
    Index("ix_forward_sink_state_seq", "sink", "state", "seq"),
)

FORWARD_TABLES = (forward_sinks, forward_leases, forward_outbox)

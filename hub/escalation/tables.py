"""The escalation tables: one chain per alert, one row per step taken, one per notice.

The chain's next step and when it is due are columns, not timers: the job
reads due chains every few seconds, and a step is taken by a conditional
UPDATE of ``step`` (k-1 → k) in the transaction that records it and queues
its notices. A hub killed at any moment therefore resumes the chain exactly:
a committed step is never taken again (the UPDATE finds k already, and
``uq_escalation_step`` stands behind it), an uncommitted one is taken at the
next pass.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, UniqueConstraint

metadata = MetaData()

_BigId = BigInteger().with_variant(Integer(), "sqlite")

RUNNING, ACKED, EXHAUSTED = "running", "acked", "exhausted"

escalations = Table(
    "escalations",
    metadata,
    Column("alert_id", String(36), primary_key=True),
    Column("group_id", String(32), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("village_id", Integer, nullable=True),
    Column("township_code", String(2), nullable=True),
    Column("started_ms", BigInteger, nullable=False),  # the alert's raise: step 1
    Column("step", Integer, nullable=False),  # the last step taken
    Column("next_ms", BigInteger, nullable=True),  # when the next step is due; None once none is left
    Column("status", String(10), nullable=False),  # running | acked | exhausted
    Column("acked_ms", BigInteger, nullable=True),
    Column("acked_by", String(64), nullable=True),  # a device id, a contact id or a console user
    Column("ack_channel", String(16), nullable=True),  # device | console | webhook | mqtt
    Column("ack_step", Integer, nullable=True),
    # An ack the group's buzzers did not make (console, callback, a 治安户长's device)
    # still owes the group a clear; the job sends it and notes when.
    Column("clear_sent_ms", BigInteger, nullable=True),
    Index("ix_escalations_due", "status", "next_ms"),
)

escalation_steps = Table(
    "escalation_steps",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("alert_id", String(36), nullable=False),
    Column("step", Integer, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    UniqueConstraint("alert_id", "step", name="uq_escalation_step"),
)

# Who was notified at a step, on which channel, and what became of it. Webhook and
# MQTT notices are outbox items (sink, item_key): their delivery result is the
# outbox row's (pending, done, dead and why), read when shown.
escalation_notices = Table(
    "escalation_notices",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("alert_id", String(36), nullable=False),
    Column("step", Integer, nullable=False),
    Column("channel", String(8), nullable=False),  # buzzer | console | webhook | mqtt
    Column("target", String(32), nullable=False),  # the contact id; the group id for the buzzers
    Column("at_ms", BigInteger, nullable=False),
    Column("result", String(16), nullable=False),  # published | unconfirmed | shown | queued | no_channel
    Column("sink", String(32), nullable=True),
    Column("item_key", String(96), nullable=True),
    Index("ix_escalation_notices_alert", "alert_id", "step"),
)

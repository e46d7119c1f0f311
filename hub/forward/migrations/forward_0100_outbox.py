"""forward: outbox, per-sink sequence counters, sender leases

The old runner's migration 100, frozen as hub/forward/tables.py defined it
(a21b38b). Why the tables look as they do is told in that module.

Revision ID: forward_0100
"""

import sqlalchemy as sa
from alembic import op

revision = "forward_0100"
down_revision = None
branch_labels = ("forward",)
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "forward_sinks",
        sa.Column("sink", sa.String(32), primary_key=True),
        sa.Column("next_seq", sa.BigInteger, nullable=False, server_default="1"),
    )
    op.create_table(
        "forward_leases",
        sa.Column("sink", sa.String(32), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("until_ms", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "forward_outbox",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("sink", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("item_key", sa.String(96), nullable=False),
        sa.Column("item_type", sa.String(8), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("state", sa.String(8), nullable=False, server_default="pending"),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("age_from_ms", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_ms", sa.BigInteger, nullable=False),
        sa.Column("last_attempt_ms", sa.BigInteger, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("done_ms", sa.BigInteger, nullable=True),
        sa.Column("dead_ms", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("sink", "seq", name="uq_forward_sink_seq"),
        sa.UniqueConstraint("sink", "item_key", name="uq_forward_sink_key"),
    )
    op.create_index("ix_forward_sink_state_seq", "forward_outbox", ["sink", "state", "seq"])

"""escalation: chains, steps and notices (issue 21)

Why the tables look as they do is told in hub/escalation/tables.py.

Revision ID: escalation_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "escalation_0001"
down_revision = None
branch_labels = ("escalation",)
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "escalations",
        sa.Column("alert_id", sa.String(36), primary_key=True),
        sa.Column("group_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("village_id", sa.Integer, nullable=True),
        sa.Column("township_code", sa.String(2), nullable=True),
        sa.Column("started_ms", sa.BigInteger, nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("next_ms", sa.BigInteger, nullable=True),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("acked_ms", sa.BigInteger, nullable=True),
        sa.Column("acked_by", sa.String(64), nullable=True),
        sa.Column("ack_channel", sa.String(16), nullable=True),
        sa.Column("ack_step", sa.Integer, nullable=True),
        sa.Column("clear_sent_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_escalations_due", "escalations", ["status", "next_ms"])
    op.create_table(
        "escalation_steps",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("alert_id", "step", name="uq_escalation_step"),
    )
    op.create_table(
        "escalation_notices",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(36), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("target", sa.String(32), nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("sink", sa.String(32), nullable=True),
        sa.Column("item_key", sa.String(96), nullable=True),
    )
    op.create_index("ix_escalation_notices_alert", "escalation_notices", ["alert_id", "step"])

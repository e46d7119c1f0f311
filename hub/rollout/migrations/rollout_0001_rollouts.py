"""rollout: rollouts, their cohorts, each device's state in them, and the audit log

Why the tables look as they do is told in hub/rollout/tables.py.

Revision ID: rollout_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "rollout_0001"
down_revision = None
branch_labels = ("rollout",)
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("min_success", sa.Float, nullable=False),
        sa.Column("max_failure", sa.Float, nullable=False),
        sa.Column("window", sa.String(11), nullable=True),
        sa.Column("downgrade", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(32), nullable=True),
        sa.Column("ended_ms", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.String(200), nullable=True),
    )
    op.create_table(
        "rollout_cohorts",
        sa.Column("rollout_id", sa.Integer, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("spec", sa.String(200), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("started_ms", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "rollout_devices",
        sa.Column("rollout_id", sa.Integer, primary_key=True),
        sa.Column("device_id", sa.String(20), primary_key=True),
        sa.Column("cohort", sa.Integer, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("from_version", sa.String(32), nullable=True),
        sa.Column("sent_ms", sa.BigInteger, nullable=True),
        sa.Column("sends", sa.Integer, nullable=False, server_default="0"),
        sa.Column("changed_ms", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(160), nullable=True),
    )
    op.create_index("ix_rollout_devices_state", "rollout_devices", ["rollout_id", "state"])
    op.create_table(
        "rollout_audit",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("rollout_id", sa.Integer, nullable=False),
        sa.Column("actor", sa.String(32), nullable=False),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("cohort", sa.Integer, nullable=True),
        sa.Column("device_id", sa.String(20), nullable=True),
        sa.Column("detail", sa.String(200), nullable=True),
    )
    op.create_index("ix_rollout_audit_rollout", "rollout_audit", ["rollout_id", "id"])

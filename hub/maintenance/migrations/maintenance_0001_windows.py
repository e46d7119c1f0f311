"""maintenance: maintenance_windows and alarm_snoozes (issue 21)

Why the tables look as they do is told in hub/maintenance/tables.py.

Revision ID: maintenance_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "maintenance_0001"
down_revision = None
branch_labels = ("maintenance",)
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("from_ms", sa.BigInteger, nullable=False),
        sa.Column("until_ms", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("ended_ms", sa.BigInteger, nullable=True),
        sa.Column("ended_by", sa.String(64), nullable=True),
    )
    op.create_index("ix_maintenance_windows_until", "maintenance_windows", ["until_ms"])
    op.create_table(
        "alarm_snoozes",
        sa.Column("alarm_id", _BigId, primary_key=True, autoincrement=False),
        sa.Column("until_ms", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )

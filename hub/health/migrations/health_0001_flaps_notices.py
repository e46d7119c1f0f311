"""health: presence_downs (flapping) and alarm_notices (recovery notices) (issue 21)

Why the tables look as they do is told in hub/health/tables.py.

Revision ID: health_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "health_0001"
down_revision = None
branch_labels = ("health",)
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "presence_downs",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_presence_downs_at", "presence_downs", ["at_ms"])
    op.create_table(
        "alarm_notices",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("alarm_id", sa.BigInteger, nullable=False),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("raised_ms", sa.BigInteger, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("detail", sa.String(200), nullable=True),
    )
    op.create_index("ix_alarm_notices_at", "alarm_notices", ["at_ms"])

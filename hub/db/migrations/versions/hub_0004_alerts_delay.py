"""alerts: delay_s, how late the event behind an alert reached the hub

The old runner's migration 4.

Revision ID: hub_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "hub_0004"
down_revision = "hub_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("delay_s", sa.Integer, nullable=True))

"""events: zones entered, loitering, no-alert and profile (issue 20, event keys zn, lo, na, pf)

Nullable, except no_alert, which defaults to false: every stored row is from
a device without zones, whose phases all could alert.

Revision ID: hub_0006
"""

import sqlalchemy as sa
from alembic import op

revision = "hub_0006"
down_revision = "hub_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("events", sa.Column("zones", sa.JSON, nullable=True))
    op.add_column("events", sa.Column("loiter_s", sa.Integer, nullable=True))
    op.add_column("events", sa.Column("no_alert", sa.Boolean, nullable=False, server_default="0"))
    op.add_column("events", sa.Column("profile", sa.String(16), nullable=True))

"""snapshots: box, where the person is in the frame the picture was taken from

The old runner's migration 5.

Revision ID: hub_0005
"""

import sqlalchemy as sa
from alembic import op

revision = "hub_0005"
down_revision = "hub_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("snapshots", sa.Column("box", sa.JSON, nullable=True))

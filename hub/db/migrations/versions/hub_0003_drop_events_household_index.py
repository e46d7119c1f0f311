"""events: drop the unused (household, time) index (ingest write cost)

The old runner's migration 3. IF EXISTS because a database the old runner made
at 23f83a7 or later never had the index (its migration 2 used the live table);
such a database has 3 recorded and is only stamped, unless that record is
missing, which is exactly the case this must survive.

Revision ID: hub_0003
"""

from alembic import op

revision = "hub_0003"
down_revision = "hub_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_events_household_time", table_name="events", if_exists=True)

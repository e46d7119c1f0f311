"""clips: mark the clips of alerts, which retention keeps longer and evicts last

Revision ID: clips_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "clips_0002"
down_revision = "clips_0001"
branch_labels = None
# The backfill reads the hub room's events and alerts (hub_0002 makes both).
depends_on = "hub_0002"


def upgrade() -> None:
    op.add_column("clips", sa.Column("alert", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_clips_alert_received", "clips", ["alert", "received_ms"])
    # Clips stored before this revision: the same rule the receiver applies to new ones
    # (hub.clips.retention.is_alert_clip): the event raised an alert, or is a panic.
    op.execute(
        sa.text(
            "UPDATE clips SET alert = :yes WHERE EXISTS (SELECT 1 FROM alerts"
            " WHERE alerts.origin_device = clips.device_id AND alerts.event_id = clips.event_id)"
            " OR EXISTS (SELECT 1 FROM events WHERE events.device_id = clips.device_id"
            " AND events.event_id = clips.event_id AND events.kind = :panic)"
        ).bindparams(yes=True, panic="panic")
    )

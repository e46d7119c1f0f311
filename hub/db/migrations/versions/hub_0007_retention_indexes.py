"""retention: indexes so pruning by age never scans (issue 21, docs/retention.md)

- ``snapshots.received_ms``: snapshots are pruned at their own, shorter age;
  without it every hourly batch read the whole table (pictures included).
- ``health_history.bucket_ms``: the primary key starts with the device, so an
  age cut-off could not use it.
- ``alerts (origin_device, event_id)``: "did this event raise an alert?" for
  each batch of snapshots (and for each clip, hub/clips/retention.py).

All three take increasing values at the right edge of the index, so ingest
pays one hot leaf page per batch, not a page per device.

Revision ID: hub_0007
"""

from alembic import op

revision = "hub_0007"
down_revision = "hub_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_snapshots_received", "snapshots", ["received_ms"])
    op.create_index("ix_health_history_bucket", "health_history", ["bucket_ms"])
    op.create_index("ix_alerts_origin_event", "alerts", ["origin_device", "event_id"])

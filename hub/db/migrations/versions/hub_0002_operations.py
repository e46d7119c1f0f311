"""hub operations: events, snapshots, health, alerts, alarms, commands, rejections

The old runner's migration 2, frozen as hub/db/schema_ops.py defined it when
it was written (2651179): with the (household_id, time_ms) index that
hub_0003 drops, and without alerts.delay_s and snapshots.box, which hub_0004
and hub_0005 add. The old runner built this from the live tables, so a
database made later got those columns here instead; that is what made fresh
and upgraded databases drift, and why this file spells every column out.

Revision ID: hub_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "hub_0002"
down_revision = "hub_0001"
branch_labels = None
depends_on = None

# SQLite auto-increments only an INTEGER PRIMARY KEY (the rowid alias).
_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("event_id", sa.BigInteger, nullable=False),
        sa.Column("phase", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("bbox", sa.JSON, nullable=True),
        sa.Column("zone", sa.String(24), nullable=True),
        sa.Column("count", sa.Integer, nullable=True),
        sa.Column("has_snapshot", sa.Boolean, nullable=False),
        sa.Column("duration_s", sa.Integer, nullable=True),
        sa.Column("device_time_ms", sa.BigInteger, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("time_ms", sa.BigInteger, nullable=False),
        sa.Column("time_trusted", sa.Boolean, nullable=False),
        sa.Column("household_id", sa.String(64), nullable=True),
        sa.UniqueConstraint("device_id", "event_id", "phase", name="uq_event_phase"),
    )
    op.create_index("ix_events_time", "events", ["time_ms"])
    op.create_index("ix_events_household_time", "events", ["household_id", "time_ms"])
    op.create_table(
        "snapshots",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("event_id", sa.BigInteger, nullable=False),
        sa.Column("phase", sa.String(8), nullable=False),
        sa.Column("device_time_ms", sa.BigInteger, nullable=False),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("crop", sa.JSON, nullable=True),
        sa.Column("jpeg", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("device_id", "event_id", "phase", name="uq_snapshot_phase"),
    )
    op.create_table(
        "health_latest",
        sa.Column("device_id", sa.String(20), primary_key=True),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("device_time_ms", sa.BigInteger, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("outbox_dropped", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "health_history",
        sa.Column("device_id", sa.String(20), primary_key=True),
        sa.Column("bucket_ms", sa.BigInteger, primary_key=True),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("temp_max", sa.Float, nullable=True),
        sa.Column("load_max", sa.Float, nullable=True),
        sa.Column("mem_min_mb", sa.BigInteger, nullable=True),
        sa.Column("disk_min_mb", sa.BigInteger, nullable=True),
        sa.Column("throttled_or", sa.BigInteger, nullable=True),
        sa.Column("outbox_max", sa.BigInteger, nullable=True),
        sa.Column("camera", sa.String(16), nullable=True),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("origin_device", sa.String(20), nullable=False),
        sa.Column("household_id", sa.String(64), nullable=False),
        sa.Column("group_id", sa.String(32), nullable=False),
        sa.Column("event_id", sa.BigInteger, nullable=True),
        sa.Column("raised_ms", sa.BigInteger, nullable=False),
        sa.Column("published_ms", sa.BigInteger, nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("closed_ms", sa.BigInteger, nullable=True),
        sa.Column("close_reason", sa.String(16), nullable=True),
        sa.Column("first_ack_ms", sa.BigInteger, nullable=True),
        sa.Column("first_ack_device", sa.String(20), nullable=True),
        sa.Column("response_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_alerts_household_kind", "alerts", ["household_id", "kind", "raised_ms"])
    op.create_index("ix_alerts_status", "alerts", ["status"])
    op.create_table(
        "alert_acks",
        sa.Column("alert_id", sa.String(36), primary_key=True),
        sa.Column("device_id", sa.String(20), primary_key=True),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("device_time_ms", sa.BigInteger, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
    )
    op.create_table(
        "alarms",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("detail", sa.String(200), nullable=True),
        sa.Column("raised_ms", sa.BigInteger, nullable=False),
        sa.Column("cleared_ms", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_alarms_open", "alarms", ["device_id", "kind", "cleared_ms"])
    op.create_table(
        "commands",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("op", sa.String(16), nullable=True),
        sa.Column("args", sa.JSON, nullable=True),
        sa.Column("sent_ms", sa.BigInteger, nullable=True),
        sa.Column("ack_ms", sa.BigInteger, nullable=True),
        sa.Column("ok", sa.Boolean, nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
    )
    op.create_table(
        "rejections",
        sa.Column("reason", sa.String(32), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("last_ms", sa.BigInteger, nullable=False),
        sa.Column("last_topic", sa.String(120), nullable=True),
        sa.Column("last_detail", sa.String(200), nullable=True),
    )

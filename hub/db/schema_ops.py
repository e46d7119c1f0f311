"""Operational tables the hub writes at run time: events, snapshots, health,
alerts, operator alarms, commands and rejection counters (migration 2).

Times are integer milliseconds since the Unix epoch, as in ``schema``.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)

from hub.db.schema import metadata

# One row per phase of one visit. The unique key is what makes at-least-once
# delivery from the devices idempotent at the hub.
events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("device_id", String(20), nullable=False),
    Column("event_id", BigInteger, nullable=False),  # boot << 32 | seq, from the device
    Column("phase", String(8), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("score", Integer, nullable=False),
    Column("bbox", JSON, nullable=True),  # [x1, y1, x2, y2] permille
    Column("zone", String(24), nullable=True),
    Column("count", Integer, nullable=True),
    Column("has_snapshot", Boolean, nullable=False),
    Column("duration_s", Integer, nullable=True),
    Column("device_time_ms", BigInteger, nullable=False),  # as sent, even when not trusted
    Column("received_ms", BigInteger, nullable=False),
    # The time the hub believes: device time when trusted, else receive time.
    Column("time_ms", BigInteger, nullable=False),
    Column("time_trusted", Boolean, nullable=False),
    Column("household_id", String(64), nullable=True),
    # Issue 20 (revision hub_0006): the zones the visit had entered by this
    # phase (wire `zn`, in order), seconds loitered (`lo`), the device's "no
    # alert" verdict (`na`) and the profile that judged it (`pf`).
    Column("zones", JSON, nullable=True),
    Column("loiter_s", Integer, nullable=True),
    Column("no_alert", Boolean, nullable=False, server_default="0"),
    Column("profile", String(16), nullable=True),
    UniqueConstraint("device_id", "event_id", "phase", name="uq_event_phase"),
    Index("ix_events_time", "time_ms"),
    # No (household_id, time_ms) index: nothing filters events by household
    # alone, and with 3,312 households it put an insert point per household
    # into every ingest commit — a third of the write cost on a full table.
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("device_id", String(20), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("phase", String(8), nullable=False),
    Column("device_time_ms", BigInteger, nullable=False),
    Column("received_ms", BigInteger, nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("crop", JSON, nullable=True),
    Column("box", JSON, nullable=True),  # the person in the picture's frame (permille), from the device
    Column("jpeg", LargeBinary, nullable=False),
    UniqueConstraint("device_id", "event_id", "phase", name="uq_snapshot_phase"),
    Index("ix_snapshots_received", "received_ms"),  # retention by age (hub_0007)
)

# The last heartbeat of each device, replaced in place.
health_latest = Table(
    "health_latest",
    metadata,
    Column("device_id", String(20), primary_key=True),
    Column("received_ms", BigInteger, nullable=False),
    Column("device_time_ms", BigInteger, nullable=False),
    Column("data", JSON, nullable=False),  # the decoded heartbeat, wire keys
    Column("outbox_dropped", BigInteger, nullable=True),
)

# Downsampled history: one row per device per bucket (default 10 minutes),
# holding the worst values seen in it — what an operator looks for afterwards.
health_history = Table(
    "health_history",
    metadata,
    Column("device_id", String(20), primary_key=True),
    Column("bucket_ms", BigInteger, primary_key=True),
    Column("samples", Integer, nullable=False),
    Column("temp_max", Float, nullable=True),
    Column("load_max", Float, nullable=True),
    Column("mem_min_mb", BigInteger, nullable=True),
    Column("disk_min_mb", BigInteger, nullable=True),
    Column("throttled_or", BigInteger, nullable=True),
    Column("outbox_max", BigInteger, nullable=True),
    Column("camera", String(16), nullable=True),  # the last camera state in the bucket
    Index("ix_health_history_bucket", "bucket_ms"),  # retention by age (hub_0007)
)

# 十户联防 alerts. ``response_ms`` (first ack − raise) is the figure the county reports.
alerts = Table(
    "alerts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("origin_device", String(20), nullable=False),
    Column("household_id", String(64), nullable=False),
    Column("group_id", String(32), nullable=False),
    Column("event_id", BigInteger, nullable=True),
    Column("raised_ms", BigInteger, nullable=False),
    Column("published_ms", BigInteger, nullable=True),
    Column("status", String(8), nullable=False),  # open | closed
    Column("closed_ms", BigInteger, nullable=True),
    Column("close_reason", String(16), nullable=True),  # ack | timeout | operator
    Column("first_ack_ms", BigInteger, nullable=True),
    Column("first_ack_device", String(20), nullable=True),
    Column("response_ms", BigInteger, nullable=True),
    # Seconds between the event and the hub receiving it, when it came late
    # (a panic held in an outbox through an outage still alerts, marked so).
    Column("delay_s", Integer, nullable=True),
    Index("ix_alerts_household_kind", "household_id", "kind", "raised_ms"),
    Index("ix_alerts_status", "status"),
    Index("ix_alerts_origin_event", "origin_device", "event_id"),  # retention: an alert's event (hub_0007)
)

alert_acks = Table(
    "alert_acks",
    metadata,
    Column("alert_id", String(36), primary_key=True),
    Column("device_id", String(20), primary_key=True),
    Column("received_ms", BigInteger, nullable=False),
    Column("device_time_ms", BigInteger, nullable=False),
    Column("ok", Boolean, nullable=False),
)

# Conditions an operator must act on: one open row per (device, kind).
alarms = Table(
    "alarms",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("device_id", String(20), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("detail", String(200), nullable=True),
    Column("raised_ms", BigInteger, nullable=False),
    Column("cleared_ms", BigInteger, nullable=True),
    Index("ix_alarms_open", "device_id", "kind", "cleared_ms"),
)

# Commands sent to devices and their results (a result for an unknown id is kept too).
commands = Table(
    "commands",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("device_id", String(20), nullable=False),
    Column("op", String(16), nullable=True),
    Column("args", JSON, nullable=True),
    Column("sent_ms", BigInteger, nullable=True),
    Column("ack_ms", BigInteger, nullable=True),
    Column("ok", Boolean, nullable=True),
    Column("error", String(200), nullable=True),
)

# Rejected messages by reason, persisted so a restart does not hide a trend.
rejections = Table(
    "rejections",
    metadata,
    Column("reason", String(32), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("last_ms", BigInteger, nullable=False),
    Column("last_topic", String(120), nullable=True),
    Column("last_detail", String(200), nullable=True),
)

OPS_TABLES = (
    events,
    snapshots,
    health_latest,
    health_history,
    alerts,
    alert_acks,
    alarms,
    commands,
    rejections,
)

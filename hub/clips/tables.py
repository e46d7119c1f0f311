"""The clips room's tables (its migrations: the ``clips`` branch, hub/clips/migrations).

- ``clips``: one row per stored clip; the file is ``clips.path/<device>/<event>.mp4``.
  A row is written only after the file is complete, checked and renamed into
  place, so a row always has its file (retention deletes the row first).
  ``alert``: the clip's event raised a 十户联防 alert (its ``alerts`` row names
  the event) or is a panic, decided when the clip is indexed (revision
  clips_0002 set it for clips stored before). Retention keeps these longer
  (``clips.keep_days_alert``) and evicts them last under ``clips.max_bytes``.
- ``clip_requests``: "fetch clip" from the console, with the command that asked
  (its ack says whether the device still had the clip).
- ``clip_policy_sent``: the policy each device was last sent, so a changed
  policy or a device that came back online gets it again, and nobody else does.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Column, Index, MetaData, String, Table, Text, false

metadata = MetaData()

clips = Table(
    "clips",
    metadata,
    Column("device_id", String(20), primary_key=True),
    Column("event_id", BigInteger, primary_key=True),
    Column("bytes", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("start_ms", BigInteger, nullable=True),
    Column("end_ms", BigInteger, nullable=True),
    Column("received_ms", BigInteger, nullable=False, index=True),
    Column("detections", JSON, nullable=True),
    Column("alert", Boolean, nullable=False, server_default=false()),
    # Retention: each class's oldest first, and under the byte cap non-alert clips before alert ones.
    Index("ix_clips_alert_received", "alert", "received_ms"),
)

clip_requests = Table(
    "clip_requests",
    metadata,
    Column("device_id", String(20), primary_key=True),
    Column("event_id", BigInteger, primary_key=True),
    Column("requested_ms", BigInteger, nullable=False),
    Column("command_id", String(36), nullable=True),
    Column("state", String(12), nullable=False),  # requested | received | refused (the device's ack)
    Column("received_bytes", BigInteger, nullable=False),
    Column("total_bytes", BigInteger, nullable=True),
)

clip_policy_sent = Table(
    "clip_policy_sent",
    metadata,
    Column("device_id", String(20), primary_key=True),
    Column("policy", Text, nullable=False),  # the canonical JSON of the command's arguments
    Column("sent_ms", BigInteger, nullable=False),
    Column("command_id", String(36), nullable=False),
)

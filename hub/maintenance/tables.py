"""The maintenance room's tables (its migrations: the ``maintenance`` branch, hub/maintenance/migrations).

A branch of its own: no foreign key reaches the registry (a window names its
target as text, so a village renamed or a device revoked keeps its history)
or the alarms table (a snooze outlives the alarm's retention).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table

metadata = MetaData()

_BigId = BigInteger().with_variant(Integer(), "sqlite")

# One row per window. Never deleted by the room: ending one early sets
# ended_ms, so the console can show what was quiet and why afterwards.
maintenance_windows = Table(
    "maintenance_windows",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("scope", String(8), nullable=False),  # device | village | group
    Column("target", String(64), nullable=False),  # device id, village id (as text) or group id
    Column("from_ms", BigInteger, nullable=False),
    Column("until_ms", BigInteger, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("ended_ms", BigInteger, nullable=True),  # ended early; None: runs to until_ms
    Column("ended_by", String(64), nullable=True),
    # The watcher asks "which windows are on now" every few seconds.
    Index("ix_maintenance_windows_until", "until_ms"),
)

# A snoozed alarm: hidden from the operators' to-do list until until_ms, then
# back on it if still open. One row per alarm; snoozing again replaces it.
alarm_snoozes = Table(
    "alarm_snoozes",
    metadata,
    Column("alarm_id", _BigId, primary_key=True, autoincrement=False),
    Column("until_ms", BigInteger, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

MAINTENANCE_TABLES = (maintenance_windows, alarm_snoozes)

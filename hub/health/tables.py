"""The health room's own tables (issue 21; its migrations: the ``health`` branch, hub/health/migrations).

The alarms themselves stay in ``hub.db.schema_ops`` (the hub branch, read by
reports and the console since migration 2). These two are newer and only the
health rules write them, so they get a branch of their own rather than a
revision in the hub's line that other rooms' engineers also extend.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table

metadata = MetaData()

_BigId = BigInteger().with_variant(Integer(), "sqlite")

# Each time a device went offline, for flapping (hub/health/flapping.py):
# kept only for health.flap_window_s, so it holds a few rows per device at most.
# Stored rather than counted in memory so that a hub restart, or a second
# worker, sees the same count.
presence_downs = Table(
    "presence_downs",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("device_id", String(20), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Index("ix_presence_downs_at", "at_ms"),
)

# A recovery notice: an alarm that was actually raised (offline_armed,
# broker_disconnect, flapping) has ended because its subject came back or
# settled. A device back within its grace never had an alarm, so it gets none.
alarm_notices = Table(
    "alarm_notices",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("alarm_id", BigInteger, nullable=False),
    Column("device_id", String(20), nullable=False),  # or 'broker'
    Column("kind", String(24), nullable=False),  # the alarm's kind
    Column("raised_ms", BigInteger, nullable=False),  # the alarm's
    Column("at_ms", BigInteger, nullable=False),  # when it recovered
    Column("detail", String(200), nullable=True),
    Index("ix_alarm_notices_at", "at_ms"),
)

HEALTH_TABLES = (presence_downs, alarm_notices)

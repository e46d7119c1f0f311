"""Tables of the hub database (SQLAlchemy Core).

Times are integer milliseconds since the Unix epoch (UTC) everywhere: the same
unit as the wire, no time-zone ambiguity, and identical on SQLite and
PostgreSQL. Display converts to Asia/Shanghai.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

# --- places and the registry (written by provisioning, read by everything) ---

townships = Table(
    "townships",
    metadata,
    Column("code", String(2), primary_key=True),  # the 2 digits after 620621 in a device ID
    Column("name", String(64), nullable=False),
)

villages = Table(
    "villages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("township_code", String(2), ForeignKey("townships.code"), nullable=False),
    Column("name", String(64), nullable=False),
    UniqueConstraint("township_code", "name", name="uq_village_name"),
)

# 联防组: about ten neighbouring households that alert each other.
groups = Table(
    "groups",
    metadata,
    Column("id", String(32), primary_key=True),  # protocol.ids.parse_group_id format
    Column("village_id", Integer, ForeignKey("villages.id"), nullable=True),
    Column("name", String(64), nullable=True),
    Column("leader_household", String(64), nullable=True),
)

households = Table(
    "households",
    metadata,
    Column("id", String(64), primary_key=True),  # the county's household code
    Column("name", String(64), nullable=True),  # shown to neighbours in an alert
    Column("village_id", Integer, ForeignKey("villages.id"), nullable=False),
    Column("group_id", String(32), ForeignKey("groups.id"), nullable=False, index=True),
    Column("lat", Float, nullable=True),
    Column("lon", Float, nullable=True),
    Column("phone", String(32), nullable=True),
    # Armed hours in Asia/Shanghai local time; from > to means overnight.
    Column("armed_from", String(5), nullable=False, server_default="22:00"),
    Column("armed_to", String(5), nullable=False, server_default="06:00"),
    Column("created_ms", BigInteger, nullable=False),
)

devices = Table(
    "devices",
    metadata,
    Column("id", String(20), primary_key=True),  # 20-digit national device code
    Column("household_id", String(64), ForeignKey("households.id"), nullable=False, index=True),
    Column("cert_fingerprint", String(64), nullable=True),  # SHA-256 of the DER certificate
    Column("cert_serial", String(40), nullable=True),
    Column("status", String(8), nullable=False, server_default="active"),  # active | revoked
    Column("revoked_ms", BigInteger, nullable=True),
    Column("revoked_reason", String(200), nullable=True),
    Column("agent_version", String(32), nullable=True),
    Column("online", Boolean, nullable=False, server_default="0"),
    Column("last_seen_ms", BigInteger, nullable=True),
    Column("state_changed_ms", BigInteger, nullable=True),
    Column("health_interval_s", Integer, nullable=False, server_default="60"),
    Column("armed", Boolean, nullable=True),
    Column("created_ms", BigInteger, nullable=False),
)

REGISTRY_TABLES = (townships, villages, groups, households, devices)

"""The console's own tables (the ``console`` migration branch): operator accounts, sessions,
login throttling, alarm acknowledgements and an audit trail.

Kept apart from the hub's tables so the console can be removed or replaced
without touching ingest. Times are integer ms since the epoch, as elsewhere.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, MetaData, String, Table

metadata = MetaData()

_BigId = BigInteger().with_variant(Integer(), "sqlite")

ROLES = ("viewer", "operator", "admin")

console_users = Table(
    "console_users",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("role", String(8), nullable=False),
    # "scrypt$n$r$p$salt_b64$hash_b64": the parameters travel with the hash so
    # they can be raised later without invalidating existing accounts.
    Column("password_hash", String(200), nullable=False),
    Column("disabled", Boolean, nullable=False, server_default="0"),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_login_ms", BigInteger, nullable=True),
)

# Only a SHA-256 of the cookie token is stored: a leaked database backup does
# not hand out live sessions.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_name", String(32), nullable=False, index=True),
    Column("csrf", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("ip", String(64), nullable=True),
)

# One row per throttling key ("u:<name>" or "ip:<address>"), in the database
# rather than in memory so that a restart or a second hub worker does not
# reset an attacker's count.
console_login_failures = Table(
    "console_login_failures",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start_ms", BigInteger, nullable=False),
    Column("locked_until_ms", BigInteger, nullable=True),
)

# An operator has seen an alarm. Clearing stays with the health rules: an
# acknowledged alarm whose condition persists is still open.
console_alarm_acks = Table(
    "console_alarm_acks",
    metadata,
    Column("alarm_id", BigInteger, primary_key=True),
    Column("user_name", String(32), nullable=False),
    Column("ack_ms", BigInteger, nullable=False),
)

console_audit = Table(
    "console_audit",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("user_name", String(32), nullable=True),
    Column("action", String(24), nullable=False),
    Column("target", String(64), nullable=True),
    Column("detail", String(200), nullable=True),
    Index("ix_console_audit_at", "at_ms"),
)

CONSOLE_TABLES = (console_users, console_sessions, console_login_failures, console_alarm_acks, console_audit)

"""console: users, sessions, login throttling, alarm acks, audit

The old runner's migration 200, frozen as hub/console/tables.py defined it
(7c0d59e). Why the tables look as they do is told in that module.

Revision ID: console_0200
"""

import sqlalchemy as sa
from alembic import op

revision = "console_0200"
down_revision = None
branch_labels = ("console",)
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(8), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("last_login_ms", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "console_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("user_name", sa.String(32), nullable=False),
        sa.Column("csrf", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("ip", sa.String(64), nullable=True),
    )
    op.create_index("ix_console_sessions_user_name", "console_sessions", ["user_name"])
    op.create_table(
        "console_login_failures",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("window_start_ms", sa.BigInteger, nullable=False),
        sa.Column("locked_until_ms", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "console_alarm_acks",
        sa.Column("alarm_id", sa.BigInteger, primary_key=True),
        sa.Column("user_name", sa.String(32), nullable=False),
        sa.Column("ack_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "console_audit",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("user_name", sa.String(32), nullable=True),
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("target", sa.String(64), nullable=True),
        sa.Column("detail", sa.String(200), nullable=True),
    )
    op.create_index("ix_console_audit_at", "console_audit", ["at_ms"])

"""registry: townships, villages, groups, households, devices

The old runner's migration 1, frozen as hub/db/schema.py defined it then
(7b9efff). Written out column by column: a later change to the live tables
must come as a new revision, never by editing this one.

Revision ID: hub_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "hub_0001"
down_revision = None
branch_labels = ("hub",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "townships",
        sa.Column("code", sa.String(2), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
    )
    op.create_table(
        "villages",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("township_code", sa.String(2), sa.ForeignKey("townships.code"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.UniqueConstraint("township_code", "name", name="uq_village_name"),
    )
    op.create_table(
        "groups",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("village_id", sa.Integer, sa.ForeignKey("villages.id"), nullable=True),
        sa.Column("name", sa.String(64), nullable=True),
        sa.Column("leader_household", sa.String(64), nullable=True),
    )
    op.create_table(
        "households",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=True),
        sa.Column("village_id", sa.Integer, sa.ForeignKey("villages.id"), nullable=False),
        sa.Column("group_id", sa.String(32), sa.ForeignKey("groups.id"), nullable=False),
        sa.Column("lat", sa.Float, nullable=True),
        sa.Column("lon", sa.Float, nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("armed_from", sa.String(5), nullable=False, server_default="22:00"),
        sa.Column("armed_to", sa.String(5), nullable=False, server_default="06:00"),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_households_group_id", "households", ["group_id"])
    op.create_table(
        "devices",
        sa.Column("id", sa.String(20), primary_key=True),
        sa.Column("household_id", sa.String(64), sa.ForeignKey("households.id"), nullable=False),
        sa.Column("cert_fingerprint", sa.String(64), nullable=True),
        sa.Column("cert_serial", sa.String(40), nullable=True),
        sa.Column("status", sa.String(8), nullable=False, server_default="active"),
        sa.Column("revoked_ms", sa.BigInteger, nullable=True),
        sa.Column("revoked_reason", sa.String(200), nullable=True),
        sa.Column("agent_version", sa.String(32), nullable=True),
        sa.Column("online", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("last_seen_ms", sa.BigInteger, nullable=True),
        sa.Column("state_changed_ms", sa.BigInteger, nullable=True),
        sa.Column("health_interval_s", sa.Integer, nullable=False, server_default="60"),
        sa.Column("armed", sa.Boolean, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_devices_household_id", "devices", ["household_id"])

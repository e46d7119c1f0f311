"""contacts: the people escalations notify (issue 21)

Why the table looks as it does is told in hub/contacts/tables.py.

Revision ID: contacts_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "contacts_0001"
down_revision = None
branch_labels = ("contacts",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("phone", sa.String(16), nullable=True),
        sa.Column("township_code", sa.String(2), nullable=True),
        sa.Column("village_id", sa.Integer, nullable=True),
        sa.Column("device_id", sa.String(20), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False, server_default="1"),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=True),
    )
    op.create_index("ix_contacts_role_village", "contacts", ["role", "village_id"])
    op.create_index("ix_contacts_device", "contacts", ["device_id"])

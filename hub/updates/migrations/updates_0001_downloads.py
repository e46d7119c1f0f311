"""updates: bytes of the TUF repository served to each device

Revision ID: updates_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "updates_0001"
down_revision = None
branch_labels = ("updates",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "update_downloads",
        sa.Column("device_id", sa.String(20), primary_key=True),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("refused", sa.BigInteger, nullable=False),
        sa.Column("first_ms", sa.BigInteger, nullable=False),
        sa.Column("last_ms", sa.BigInteger, nullable=False),
    )

"""clips: the clip index, fetch requests and the policy each device was sent

Revision ID: clips_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "clips_0001"
down_revision = None
branch_labels = ("clips",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clips",
        sa.Column("device_id", sa.String(20), primary_key=True),
        sa.Column("event_id", sa.BigInteger, primary_key=True),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=True),
        sa.Column("end_ms", sa.BigInteger, nullable=True),
        sa.Column("received_ms", sa.BigInteger, nullable=False),
        sa.Column("detections", sa.JSON, nullable=True),
    )
    # Retention walks clips oldest first.
    op.create_index("ix_clips_received_ms", "clips", ["received_ms"])
    op.create_table(
        "clip_requests",
        sa.Column("device_id", sa.String(20), primary_key=True),
        sa.Column("event_id", sa.BigInteger, primary_key=True),
        sa.Column("requested_ms", sa.BigInteger, nullable=False),
        sa.Column("command_id", sa.String(36), nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("received_bytes", sa.BigInteger, nullable=False),
        sa.Column("total_bytes", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "clip_policy_sent",
        sa.Column("device_id", sa.String(20), primary_key=True),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("sent_ms", sa.BigInteger, nullable=False),
        sa.Column("command_id", sa.String(36), nullable=False),
    )

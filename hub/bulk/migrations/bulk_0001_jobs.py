"""bulk: bulk_jobs and bulk_results, bulk operations on a selection of devices (issue 21)

Why the tables look as they do is told in hub/bulk/tables.py.

Revision ID: bulk_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "bulk_0001"
down_revision = None
branch_labels = ("bulk",)
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "bulk_jobs",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("selection", sa.JSON, nullable=False),
        sa.Column("args", sa.JSON, nullable=True),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(32), nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("finished_ms", sa.BigInteger, nullable=True),
        sa.Column("counts", sa.JSON, nullable=True),
    )
    op.create_index("ix_bulk_jobs_created", "bulk_jobs", ["created_ms"])
    op.create_table(
        "bulk_results",
        sa.Column("job_id", sa.BigInteger, nullable=False),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("command_id", sa.String(36), nullable=True),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("sent_ms", sa.BigInteger, nullable=True),
        sa.Column("done_ms", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("job_id", "device_id", name="pk_bulk_results"),
    )

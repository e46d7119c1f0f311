"""configs: config_pushes, the history of config pushes to devices (issue 20)

Why the table looks as it does is told in hub/configs/tables.py.

Revision ID: configs_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "configs_0001"
down_revision = None
branch_labels = ("configs",)
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "config_pushes",
        sa.Column("id", _BigId, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.String(20), nullable=False),
        sa.Column("rev", sa.Integer, nullable=False),
        sa.Column("doc", sa.JSON, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("template", sa.String(64), nullable=True),
        sa.Column("command_id", sa.String(36), nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
        sa.UniqueConstraint("device_id", "rev", name="uq_config_push_rev"),
    )
    op.create_index("ix_config_pushes_command", "config_pushes", ["command_id"])

"""The configs room's table (its migrations: the ``configs`` branch, hub/configs/migrations).

A branch of its own, like the rollout room's: no foreign key reaches the
registry or the commands table (a device removed from the registry keeps its
history, and the commands table is pruned on its own schedule).

One row per push of a ``config`` command to one device. The device's answer
is not copied here: it is the ack stored in ``commands`` for ``command_id``
(``hub.commands.record_result``), read back by a join, so there is one truth
and nothing to keep in step. ``error`` is set only when the command never
left the hub (no channel, device not active, the publish failed).
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, MetaData, String, Table, UniqueConstraint

metadata = MetaData()

_BigId = BigInteger().with_variant(Integer(), "sqlite")

config_pushes = Table(
    "config_pushes",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("device_id", String(20), nullable=False),
    Column("rev", Integer, nullable=False),  # the device's previous max + 1; health ``cfg`` reports it once applied
    Column("doc", JSON, nullable=False),  # the ``vision`` object as pushed
    Column("created_ms", BigInteger, nullable=False),
    Column("created_by", String(64), nullable=False),  # the operator (the console audits the request too)
    Column("template", String(64), nullable=True),  # the template's name when pushed from one
    Column("command_id", String(36), nullable=True),  # commands.id; None until (or unless) sent
    Column("error", String(200), nullable=True),  # why it was never sent
    # Two pushes to one device can never share a revision: the last guard
    # behind the one-statement allocation in service.py.
    UniqueConstraint("device_id", "rev", name="uq_config_push_rev"),
    Index("ix_config_pushes_command", "command_id"),
)

CONFIG_TABLES = (config_pushes,)

"""The rollout room's tables (their migrations: the ``rollout`` branch, hub/rollout/migrations).

A branch of its own, like the forwarder's and the console's: no foreign key
reaches the registry (a device removed from the registry keeps its history
here), and the console's audit table is the console's, which this layer may
not import; so rollouts keep their own audit log, written by the engine and by
every command or console button that changes a rollout.

``rollout_devices`` holds each device's state in one rollout (its "history"
is ``rollout_audit``'s rows naming it). States:

- ``waiting``: its cohort has not started;
- ``queued``: its cohort started, no command sent yet (offline, or outside the window);
- ``sent``: ``update`` sent, no progress reported yet;
- ``working``: the device reports ``us`` wait/dl/inst/trial for this release;
- ``committed``: it runs the release (``ver``) and ``us`` is ``ok`` (or idle);
- ``failed``: ``us`` fail or rb for this release, ``reason`` from ``ue``;
- ``skipped``: revoked or gone from the registry since the rollout was made.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, Integer, MetaData, String, Table

metadata = MetaData()

_BigId = BigInteger().with_variant(Integer(), "sqlite")

# active → paused ⇄ active; active/paused → halted (failure threshold) ; any of them → aborted; active → done.
ROLLOUT_STATES = ("active", "paused", "halted", "aborted", "done")
OPEN_STATES = ("active", "paused", "halted")  # one such rollout at a time: two would fight over devices
DEVICE_STATES = ("waiting", "queued", "sent", "working", "committed", "failed", "skipped")
TERMINAL = ("committed", "failed", "skipped")

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("version", String(32), nullable=False),
    Column("status", String(8), nullable=False),
    Column("min_success", Float, nullable=False),  # percent of a cohort committed before the next starts
    Column("max_failure", Float, nullable=False),  # percent of a cohort failed that halts the rollout
    Column("window", String(11), nullable=True),  # "HH:MM-HH:MM" county time; None: any time
    Column("downgrade", Boolean, nullable=False, server_default="0"),
    Column("created_ms", BigInteger, nullable=False),
    Column("created_by", String(32), nullable=True),
    Column("ended_ms", BigInteger, nullable=True),
    Column("reason", String(200), nullable=True),  # why it halted or was aborted
)

rollout_cohorts = Table(
    "rollout_cohorts",
    metadata,
    Column("rollout_id", Integer, primary_key=True),
    Column("position", Integer, primary_key=True),  # 0 first
    Column("spec", String(200), nullable=False),  # as the operator wrote it: village:和平村
    Column("size", Integer, nullable=False),
    Column("started_ms", BigInteger, nullable=True),
)

rollout_devices = Table(
    "rollout_devices",
    metadata,
    Column("rollout_id", Integer, primary_key=True),
    Column("device_id", String(20), primary_key=True),
    Column("cohort", Integer, nullable=False),
    Column("state", String(10), nullable=False),
    Column("from_version", String(32), nullable=True),  # what it ran when the rollout was made
    Column("sent_ms", BigInteger, nullable=True),
    Column("sends", Integer, nullable=False, server_default="0"),
    Column("changed_ms", BigInteger, nullable=False),
    Column("reason", String(160), nullable=True),
    Index("ix_rollout_devices_state", "rollout_id", "state"),
)

rollout_audit = Table(
    "rollout_audit",
    metadata,
    Column("id", _BigId, primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("rollout_id", Integer, nullable=False),
    Column("actor", String(32), nullable=False),  # an operator's name, or "hub" for the engine
    Column("action", String(24), nullable=False),
    Column("cohort", Integer, nullable=True),
    Column("device_id", String(20), nullable=True),
    Column("detail", String(200), nullable=True),
    Index("ix_rollout_audit_rollout", "rollout_id", "id"),
)

ROLLOUT_TABLES = (rollouts, rollout_cohorts, rollout_devices, rollout_audit)

"""Databases made by the old ``schema_version`` runner, moved into Alembic once.

The old runner kept the set of migration numbers it had applied (hub 1-5,
forward 100, console 200). Each of them is one revision now. For each room,
its old numbers are walked in order up to the highest one recorded: a number
the old runner recorded is stamped (its tables are there), one it did not is
run. That is the old runner's own rule, "apply what is not in the set", so a
database missing migration 3 gets 3 and nothing twice. A room with nothing
recorded is left to the ordinary upgrade, which creates it from its base.
``schema_version`` is then dropped, in the same transaction as all of this:
a database is either the old runner's or Alembic's, never half of each.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect, text


class MigrationError(RuntimeError):
    """The database cannot be upgraded by this xl-hub as it is (the message says why)."""


# room -> its old migration numbers and the revisions they became, in order.
REVISIONS: dict[str, tuple[tuple[int, str], ...]] = {
    "hub": ((1, "hub_0001"), (2, "hub_0002"), (3, "hub_0003"), (4, "hub_0004"), (5, "hub_0005")),
    "forward": ((100, "forward_0100"),),
    "console": ((200, "console_0200"),),
}


def applied_versions(conn: Connection) -> set[int] | None:
    """The old runner's applied numbers; None when the database has no schema_version table."""
    if not inspect(conn).has_table("schema_version"):
        return None
    return {int(v) for v in conn.execute(text("SELECT version FROM schema_version")).scalars()}


def bridge(conn: Connection, cfg: Config) -> None:
    """Stamp what the old runner applied, run what it skipped, drop schema_version.

    Runs inside the caller's upgrade transaction; a no-op on a database
    without schema_version."""
    have = applied_versions(conn)
    if have is None:
        return
    if MigrationContext.configure(conn).get_current_heads():
        raise MigrationError(
            "the database has both schema_version and alembic_version: "
            "it was changed by hand; drop the one that is wrong"
        )
    known = {v for steps in REVISIONS.values() for v, _ in steps}
    if have - known:
        raise MigrationError(
            f"schema_version lists migrations {sorted(have - known)}, which this xl-hub "
            "does not know: a newer xl-hub made them; upgrade with that one"
        )
    for steps in REVISIONS.values():
        top = max((v for v, _ in steps if v in have), default=None)
        for version, revision in steps:
            if top is None or version > top:
                break
            if version in have:
                command.stamp(cfg, revision)
            else:
                command.upgrade(cfg, revision)
    conn.execute(text("DROP TABLE schema_version"))

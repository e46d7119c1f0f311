"""Schema migrations (``xl-hub db upgrade`` / ``xl-hub db status``): Alembic, one branch per room.

Each room that owns tables keeps its revisions beside its code, as one Alembic
branch: ``hub`` (registry and operational tables, hub/db/migrations/versions),
``forward`` (hub/forward/migrations) and ``console`` (hub/console/migrations), ``updates`` and
``rollout`` (issue 17), ``clips`` (issue 18), ``configs`` (issue 20), ``bulk``, ``maintenance``
and ``health`` (issue 21).
Branches rather than one line because the rooms are independent (no foreign
key crosses them) and are written by different people: a new console revision
never has to be ordered against a hub one, and the console can be left out
without renumbering anything. Alembic keeps one ``alembic_version`` row per
branch head, and a database is current only when it is at *every* head, which
is what ``schema_problem`` checks before the hub, the console or a report
touches it.

Every revision spells out its operations (``op.create_table`` with explicit
columns), never the live ``Table`` objects: the live tables describe today,
a revision describes one step, and a fresh database must be built by the same
steps an old one is upgraded by. There is no autogenerate and no downgrade
(forward only: a failed upgrade rolls back, a bad one is a restore).

The whole upgrade is one transaction, on PostgreSQL and on SQLite alike (see
``_transaction``), so a crash leaves the database as it was and two workers
upgrading at once take turns. Databases made by the old ``schema_version``
runner are moved over inside the same transaction (``hub.db.legacy``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import NullPool

from hub.db import legacy
from hub.db.legacy import MigrationError

__all__ = ["BranchStatus", "MigrationError", "Status", "alembic_config", "schema_problem", "status", "upgrade"]

_HUB = Path(__file__).resolve().parents[1]
_ENV_DIR = _HUB / "db" / "migrations"
# Branch label -> the folder of that room's revisions. A room whose folder is
# absent has no branch here, and a database that has it shows its revision as unknown.
ROOMS: dict[str, Path] = {
    "hub": _ENV_DIR / "versions",
    "forward": _HUB / "forward" / "migrations",
    "console": _HUB / "console" / "migrations",
    "updates": _HUB / "updates" / "migrations",
    "rollout": _HUB / "rollout" / "migrations",
    "clips": _HUB / "clips" / "migrations",
    "configs": _HUB / "configs" / "migrations",
    "contacts": _HUB / "contacts" / "migrations",
    "escalation": _HUB / "escalation" / "migrations",
    "bulk": _HUB / "bulk" / "migrations",
    "maintenance": _HUB / "maintenance" / "migrations",
    "health": _HUB / "health" / "migrations",
}

# Any constant: upgrades of one PostgreSQL database wait for each other on it.
_PG_LOCK_KEY = 0x584C_4855_4221  # "XLHUB!"


@dataclass(frozen=True)
class BranchStatus:
    branch: str
    current: str | None  # the branch's revision in the database; None: none of it applied
    head: str  # this xl-hub's newest revision of the branch
    pending: tuple[str, ...]  # revisions `xl-hub db upgrade` would apply, oldest first


@dataclass(frozen=True)
class Status:
    branches: tuple[BranchStatus, ...]
    unknown: tuple[str, ...]  # revisions in the database this xl-hub does not have
    legacy: frozenset[int] | None  # versions in the old schema_version table, if it is there

    @property
    def up_to_date(self) -> bool:
        return self.legacy is None and not self.unknown and not any(b.pending for b in self.branches)


def alembic_config(connection: Connection | None = None, on_apply: Any = None) -> Config:
    """An Alembic config for this hub's revisions; ``alembic.command`` calls run on ``connection``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_ENV_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", os.pathsep.join(str(p) for p in ROOMS.values() if p.is_dir()))
    cfg.attributes["connection"] = connection
    cfg.attributes["on_version_apply"] = on_apply
    return cfg


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def _branch_of(script: ScriptDirectory, revision: str) -> str | None:
    labels = script.get_revision(revision).branch_labels  # a base's label is inherited by its descendants
    return next((b for b in ROOMS if b in labels), None)


def status(engine: Engine) -> Status:
    script = script_directory()
    with engine.connect() as conn:
        in_db = MigrationContext.configure(conn).get_current_heads()
        old = legacy.applied_versions(conn)
    known: dict[str, str] = {}
    unknown: list[str] = []
    for rev in in_db:
        try:
            branch = _branch_of(script, rev)
        except CommandError:
            branch = None
        if branch is None:
            unknown.append(rev)
        else:
            known[branch] = rev
    branches = []
    for branch in ROOMS:
        try:
            head = script.get_revision(f"{branch}@head").revision
        except CommandError:
            continue  # the room is not installed
        current = known.get(branch)
        steps = script.iterate_revisions(head, current or "base")  # newest first
        branches.append(BranchStatus(branch, current, head, tuple(r.revision for r in reversed(list(steps)))))
    return Status(tuple(branches), tuple(unknown), None if old is None else frozenset(old))


def schema_problem(
    engine: Engine, *, branches: tuple[str, ...] | None = None, upgrade_command: str = "xl-hub db upgrade"
) -> str | None:
    """Why this database is not ready for this xl-hub (None: it is at every head).

    ``branches`` narrows the check to some rooms (the console's user commands
    need only the console's tables)."""
    st = status(engine)
    run = f"run `{upgrade_command}` first"
    if st.legacy is not None:
        return (
            f"the database still has the old migration runner's schema_version table "
            f"(migrations {_ranges(st.legacy)}) and no Alembic revision: {run}; "
            "it records what the old runner applied and applies the rest"
        )
    if st.unknown:
        return _unknown(st.unknown)
    behind = [b for b in st.branches if b.pending and (branches is None or b.branch in branches)]
    if not behind:
        return None
    if all(b.current is None for b in st.branches):
        return f"the database has no tables yet: {run}"
    where = "; ".join(f"{b.branch} at {b.current or 'nothing'}, needs {b.head}" for b in behind)
    return f"the database is not at every head ({where}): {run}"


def _unknown(revisions: tuple[str, ...]) -> str:
    return (
        f"the database is at revision {', '.join(revisions)}, which this xl-hub does not have: "
        "a newer xl-hub upgraded it; run that version"
    )


def _ranges(versions: frozenset[int]) -> str:
    runs: list[list[int]] = []
    for v in sorted(versions):
        if runs and runs[-1][1] == v - 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def upgrade(engine: Engine) -> list[str]:
    """Bring the database to every head. Returns the revisions applied (not those only stamped)."""
    applied: list[str] = []

    def on_apply(*, step: Any, **_: Any) -> None:
        if not step.is_stamp:
            applied.append(step.up_revision_id)

    unknown = status(engine).unknown
    if unknown:  # Alembic would fail on them too, with a message that does not say why
        raise MigrationError(_unknown(unknown))
    with _transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        cfg = alembic_config(conn, on_apply)
        legacy.bridge(conn, cfg)
        command.upgrade(cfg, "heads")
    return applied


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction that DDL takes part in.

    pysqlite opens a transaction only before INSERT/UPDATE/DELETE, so on the
    hub's SQLite engine every CREATE and ALTER commits on its own: a crash
    mid-upgrade would leave tables without the revision that made them. The
    upgrade therefore gets an engine of its own on the same file where the
    driver is told to stay out of it and the transaction is an explicit
    BEGIN IMMEDIATE (which also makes a second upgrade wait its turn).
    """
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        with engine.begin() as conn:
            yield conn
        return
    own = create_engine(engine.url, poolclass=NullPool)

    @event.listens_for(own, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        dbapi_conn.execute("PRAGMA busy_timeout=10000")

    @event.listens_for(own, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    try:
        with own.begin() as conn:
            yield conn
    finally:
        own.dispose()

"""A small versioned migration runner (``xl-hub db upgrade``).

Each migration is a numbered function that runs inside one transaction; the
applied number is kept in ``schema_version``. It is deliberately smaller than
Alembic: one linear history, the same code path on SQLite and PostgreSQL, and
no autogenerate magic to review. Rooms that own tables (ingest, alerts,
forwarding, console) append their migrations here in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
)

from hub.db import schema, schema_ops

_version_meta = MetaData()
schema_version = Table(
    "schema_version",
    _version_meta,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_ms", BigInteger, nullable=False),
)

Migration = tuple[int, str, Callable[[Connection], None]]


def _create(*tables: Table) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return run


MIGRATIONS: list[Migration] = [
    (1, "registry: townships, villages, groups, households, devices", _create(*schema.REGISTRY_TABLES)),
    (
        2,
        "hub operations: events, snapshots, health, alerts, alarms, commands, rejections",
        _create(*schema_ops.OPS_TABLES),
    ),
    (3, "events: drop the unused (household, time) index (ingest write cost)", lambda conn: conn.exec_driver_sql(
        "DROP INDEX IF EXISTS ix_events_household_time")),
    (4, "alerts: delay_s, how late the event behind an alert reached the hub", lambda conn: _add_column(
        conn, "alerts", "delay_s", "INTEGER")),
    (5, "snapshots: box, where the person is in the frame the picture was taken from", lambda conn: _add_column(
        conn, "snapshots", "box", "JSON")),
]


def _add_column(conn: Connection, table: str, column: str, sql_type: str) -> None:
    # Migration 2 creates tables from the current schema, so a new database already has it.
    if column not in {c["name"] for c in inspect(conn).get_columns(table)}:
        conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")


def register(version: int, description: str, run: Callable[[Connection], None]) -> None:
    """Add a migration (used by rooms that define their own tables)."""
    if any(v == version for v, _, _ in MIGRATIONS):
        raise ValueError(f"migration {version} is already registered")
    MIGRATIONS.append((version, description, run))
    MIGRATIONS.sort(key=lambda m: m[0])


def applied_versions(engine: Engine) -> set[int]:
    if not inspect(engine).has_table("schema_version"):
        return set()
    with engine.connect() as conn:
        return set(conn.execute(select(schema_version.c.version)).scalars().all())


def current_version(engine: Engine) -> int:
    return max(applied_versions(engine), default=0)


def upgrade(engine: Engine, target: int | None = None) -> list[int]:
    """Apply pending migrations up to ``target`` (default: all). Returns those applied."""
    _load_room_migrations()
    with engine.begin() as conn:
        schema_version.create(conn, checkfirst=True)
    applied: list[int] = []
    # Compare against the set of applied versions, not the maximum: rooms number
    # their migrations in separate ranges (hub 1-99, forwarding 100+), so a
    # database that already has 100 must still get a later hub migration 3.
    have = applied_versions(engine)
    for version, description, run in MIGRATIONS:
        if version in have or (target is not None and version > target):
            continue
        with engine.begin() as conn:
            run(conn)
            conn.execute(
                schema_version.insert().values(
                    version=version, description=description[:200], applied_ms=int(time.time() * 1000)
                )
            )
        applied.append(version)
    return applied


def _load_room_migrations() -> None:
    """Import the modules that register further migrations, if they exist yet."""
    import importlib

    # hub.forward registers its own tables (migrations 100+) when imported.
    for name in ("hub.db.schema_ops", "hub.forward", "hub.console.tables"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise

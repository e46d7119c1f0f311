"""Databases as the old ``schema_version`` runner left them, and a schema fingerprint to compare.

The ``legacy_schemas/*.sql`` files are what each old release's own upgrade()
sent (see ``legacy_schemas/freeze.py``), so loading one makes, on SQLite or
PostgreSQL, the database that release made.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect

LEGACY_DIR = Path(__file__).resolve().parent / "legacy_schemas"
# The states frozen there: the release whose runner made the database, and
# "chain", a database made by the first release and upgraded by every later one.
STATES = ("v1", "v2", "v3", "v4", "v5", "chain")


def load_legacy(engine: Engine, state: str) -> None:
    """Run the frozen DDL (and schema_version rows) of ``state`` on an empty database."""
    sql = (LEGACY_DIR / f"{state}.{engine.dialect.name}.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    with engine.begin() as conn:
        for statement in re.split(r";\s*\n", body):
            if statement.strip():
                conn.exec_driver_sql(statement)


def schema_fingerprint(engine: Engine) -> dict[str, Any]:
    """Everything a migration decides, per table, as reflected from the database.

    Columns are compared by name, not position: SQLite can only append a
    column, so the old runner's fresh databases (built from the live tables)
    and upgraded ones order them differently, and nothing reads by position.
    Server defaults are kept as the database reports them (PostgreSQL's
    include the sequence name, which must match too).
    """
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        columns = {
            c["name"]: (
                str(c["type"].compile(dialect=engine.dialect)),
                bool(c["nullable"]),
                None if c.get("default") is None else str(c["default"]),
            )
            for c in insp.get_columns(table)
        }
        out[table] = {
            "columns": columns,
            "primary_key": tuple(insp.get_pk_constraint(table)["constrained_columns"]),
            "foreign_keys": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"], tuple(fk["referred_columns"]))
                for fk in insp.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (str(i["name"]), tuple(str(c) for c in i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table)
            ),
            "unique": sorted((str(u["name"]), tuple(u["column_names"])) for u in insp.get_unique_constraints(table)),
        }
    return out

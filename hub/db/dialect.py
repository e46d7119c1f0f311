"""INSERT … ON CONFLICT for whichever backend a connection uses.

SQLite and PostgreSQL both support ``ON CONFLICT DO NOTHING / DO UPDATE`` and
``RETURNING`` (SQLite ≥ 3.35), through dialect-specific ``insert`` constructs
with the same API.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def upsert_insert(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {conn.dialect.name!r} (use SQLite or PostgreSQL)")

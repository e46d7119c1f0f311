"""Helpers shared by the benchmarks: results file and table printing."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
if str(ROOT) not in sys.path:  # so `python bench/x.py` finds the project and tests.support
    sys.path.insert(0, str(ROOT))


def merge_results(figures: dict[str, Any]) -> dict[str, Any]:
    """Read-modify-write bench/results.json so each benchmark adds its own keys."""
    current: dict[str, Any] = {}
    if RESULTS.exists():
        try:
            current = json.loads(RESULTS.read_text())
        except json.JSONDecodeError:
            current = {}
    current.update(figures)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return current


def print_table(title: str, rows: list[tuple[str, Any, str]]) -> None:
    print(f"\n{title}")
    width = max(len(k) for k, _, _ in rows)
    for key, value, note in rows:
        shown = f"{value:,.2f}" if isinstance(value, float) else f"{value:,}" if isinstance(value, int) else value
        print(f"  {key:<{width}}  {shown:>12}  {note}")


PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_schema(prefix: str = "xl_bench_") -> tuple[str, str]:
    """A fresh PostgreSQL schema and a URL whose search_path is it (drop it with drop_pg)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    name = prefix + uuid.uuid4().hex[:8]
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    admin.dispose()
    return name, f"{PG_ADMIN}?options=-csearch_path%3D{name}"


def drop_pg(name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
    admin.dispose()

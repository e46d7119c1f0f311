"""Freeze the databases the old ``schema_version`` runner left, as SQL fixtures.

Run once by hand (``.venv/bin/python tests/support/legacy_schemas/freeze.py``);
the tests only read the ``*.sql`` files it writes, so they need neither git
history nor the old code. Each past release's own ``hub/`` is taken from git
(``git archive``) and its own ``upgrade()`` is run, on SQLite and on
PostgreSQL, with every DDL statement it sends recorded. That is the honest
"database made by version N": its tables came from that release's live table
definitions, not from today's, and nothing here re-derives them.

A state is a list of releases whose runner touched the same database in turn;
``chain`` is a county that installed the first release and upgraded through
every later one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
PG_ADMIN_URL = os.environ.get("XL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# The commits that changed the old runner's migrations, oldest first, and the
# set of versions each one applies. a21b38b (forward 100) and 7c0d59e (console
# 200) changed it too, but their hub.db did not import (migrate.py already
# imported schema_ops, which arrived in 2651179), so no database was ever made
# by them: 100 and 200 were first applied, with 2, by 2651179.
RELEASES = {
    "7b9efff": "1",
    "2651179": "1, 2, 100, 200",
    "23f83a7": "1-3, 100, 200",
    "0e473f3": "1-4, 100, 200",
    "39a16f6": "1-5, 100, 200",
}
STATES: dict[str, list[str]] = {
    "v1": ["7b9efff"],
    "v2": ["2651179"],
    "v3": ["23f83a7"],
    "v4": ["0e473f3"],
    "v5": ["39a16f6"],
    "chain": list(RELEASES),
}

# Runs inside an old release's tree: its own make_engine and upgrade, with the
# DDL it sends recorded as sent.
_RUNNER = """
import json, sys
from sqlalchemy import event
from hub.db import make_engine, upgrade
engine = make_engine(sys.argv[1])
sent = []
@event.listens_for(engine, "before_cursor_execute")
def _record(conn, cursor, statement, parameters, context, executemany):
    if statement.lstrip().split(None, 1)[0].upper() in ("CREATE", "DROP", "ALTER"):
        sent.append(statement.strip())
upgrade(engine)
engine.dispose()
print(json.dumps(sent))
"""


def _tree(commit: str, root: Path) -> Path:
    dest = root / commit
    if not dest.exists():
        dest.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit, "hub", "protocol"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def _run_release(commit: str, url: str, root: Path) -> list[str]:
    tree = _tree(commit, root)
    # cwd and PYTHONPATH are the old tree, so `import hub` is that release's hub.
    out = subprocess.run(
        [sys.executable, "-c", _RUNNER, url],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return list(json.loads(out.strip().splitlines()[-1]))


def _version_rows(url: str) -> list[tuple[int, str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT version, description FROM schema_version ORDER BY version")).all()
    engine.dispose()
    return [(int(v), str(d)) for v, d in rows]


def _write(name: str, dialect: str, commits: list[str], statements: list[str], rows: list[tuple[int, str]]) -> None:
    lines = [
        f"-- The database xl-hub's old runner left at {' then '.join(commits)} ({dialect}).",
        "-- Written by tests/support/legacy_schemas/freeze.py: the DDL those releases sent, as sent.",
        "",
    ]
    lines += [s + ";\n" for s in statements]
    for version, description in rows:
        quoted = description.replace("'", "''")
        # applied_ms is a fixed instant: the fixture must not change at each freeze.
        lines.append(
            "INSERT INTO schema_version (version, description, applied_ms) "
            f"VALUES ({version}, '{quoted}', 1764115200000);\n"
        )
    (HERE / f"{name}.{dialect}.sql").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, commits in STATES.items():
            sqlite_url = f"sqlite:///{root / (name + '.sqlite3')}"
            statements = [s for c in commits for s in _run_release(c, sqlite_url, root)]
            _write(name, "sqlite", commits, statements, _version_rows(sqlite_url))

            schema = "xl_freeze_" + uuid.uuid4().hex[:8]
            admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            try:
                pg_url = f"{PG_ADMIN_URL}?options=-csearch_path%3D{schema}"
                statements = [s for c in commits for s in _run_release(c, pg_url, root)]
                _write(name, "postgresql", commits, statements, _version_rows(pg_url))
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
            print(f"{name}: {len(statements)} statements")


if __name__ == "__main__":
    main()

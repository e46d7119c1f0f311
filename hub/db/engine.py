"""Engine construction with the per-backend settings the hub relies on."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

DEFAULT_URL = "sqlite:///var/hub.sqlite3"


def make_engine(url: str = DEFAULT_URL, *, echo: bool = False) -> Engine:
    """An engine for ``url``. SQLite gets WAL, a busy timeout and foreign keys.

    WAL lets the console read while ingest writes. ``synchronous=FULL`` syncs
    the WAL at every commit: the hub acknowledges a message to the broker only
    after its commit, so a commit that a power cut could still undo would be a
    message lost. With batches of hundreds of messages that sync costs little
    (measured: 5 % of ingest time on a full events table).

    A large page cache and rare checkpoints are what keep ingest fast once the
    events table is big: each batch touches one index leaf per device, and
    with SQLite's defaults (2 MiB cache, a checkpoint every 1,000 pages) every
    commit re-read and re-wrote those leaves (measured: 80 → 55 µs a message).
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # hide_parameters: an error's message (logged with its traceback) would otherwise carry
    # the statement's values: a contact's phone, a household's name.
    kwargs: dict[str, Any] = {"echo": echo, "future": True, "hide_parameters": True}
    if url.startswith("postgresql"):
        kwargs.update(pool_size=5, max_overflow=5, pool_pre_ping=True)
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=10000")
            _wal(cur)
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA cache_size=-131072")  # KiB: 128 MiB
            cur.execute("PRAGMA wal_autocheckpoint=20000")  # pages: ~80 MiB of WAL between checkpoints
            cur.execute("PRAGMA journal_size_limit=134217728")  # shrink the WAL back to 128 MiB after one
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


def _wal(cur: Any) -> None:
    """Switch a file to WAL (once; the mode is kept in the file). The switch needs the
    file to itself and SQLite does not wait for that as it waits for locks, so a
    second process opening a new database while the first creates its tables
    (two workers' `xl-hub db upgrade`) is answered "locked" at once: try again."""
    for attempt in range(50):
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.1)

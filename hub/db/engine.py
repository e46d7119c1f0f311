"""Engine construction with the per-backend settings the hub relies on."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event

DEFAULT_URL = "sqlite:///var/hub.sqlite3"


def make_engine(url: str = DEFAULT_URL, *, echo: bool = False) -> Engine:
    """An engine for ``url``. SQLite gets WAL, a busy timeout and foreign keys.

    WAL lets the console read while ingest writes; ``synchronous=NORMAL`` is
    safe with WAL on a server (a power cut can lose the last commits but never
    corrupts the file), and the devices re-send anything the hub did not PUBACK
    — the hub acks only after commit — so nothing acknowledged is lost.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        Path(url[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, object] = {"echo": echo, "future": True}
    if url.startswith("postgresql"):
        kwargs.update(pool_size=5, max_overflow=5, pool_pre_ping=True)
    engine = create_engine(url, **kwargs)  # type: ignore[arg-type]
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    return engine

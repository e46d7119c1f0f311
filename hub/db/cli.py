"""``xl-hub db upgrade`` and ``xl-hub db status``."""

from __future__ import annotations

import sys

from sqlalchemy import Engine

from hub.cli_output import print_rows
from hub.db.migrate import MigrationError, Status, status, upgrade


def db_command(engine: Engine, action: str) -> int:
    if action == "upgrade":
        was_legacy = status(engine).legacy is not None
        try:
            applied = upgrade(engine)
        except MigrationError as exc:
            print(f"xl-hub: {exc}", file=sys.stderr)
            return 1
        if was_legacy:
            print("moved from the old schema_version runner to Alembic (what it had applied is stamped)")
        heads = ", ".join(f"{b.branch} {b.head}" for b in status(engine).branches)
        print(f"applied {', '.join(applied)}" if applied else "already up to date", f"(at every head: {heads})")
        return 0
    st = status(engine)
    _print_status(st)
    return 0 if st.up_to_date else 1


def _print_status(st: Status) -> None:
    print_rows(
        [
            {"room": b.branch, "database": b.current, "head": b.head, "pending": " ".join(b.pending) or None}
            for b in st.branches
        ],
        as_json=False,
    )
    if st.legacy is not None:
        print(
            "the database still has the old runner's schema_version table "
            f"({', '.join(str(v) for v in sorted(st.legacy))}): `xl-hub db upgrade` moves it to Alembic"
        )
    if st.unknown:
        print(f"revisions in the database this xl-hub does not have: {', '.join(st.unknown)} (a newer xl-hub?)")
    print("at every head" if st.up_to_date else "not up to date: run `xl-hub db upgrade`")

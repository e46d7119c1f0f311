"""The heads check: the hub, the console and the reports refuse a database not at every head.

The first test is the old runner's defect and fails on it: ``xl-hub events``
and ``xl-hub run`` went ahead on a database missing migration 3, because only
the highest applied version was compared.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from hub.cli import main
from hub.db import make_engine, schema_problem
from tests.support.legacy_db import load_legacy


def _config(tmp_path: Path, url: str) -> str:
    path = tmp_path / "hub.yaml"
    # Nothing listens on port 1: the hub must refuse before it tries the broker.
    path.write_text(f"database: {{url: '{url}'}}\nmqtt: {{host: 127.0.0.1, port: 1}}\nmetrics: {{enabled: false}}\n")
    return str(path)


def test_a_database_missing_migration_3_is_refused(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(db_url)
    load_legacy(engine, "v5")
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM schema_version WHERE version = 3"))
    engine.dispose()

    assert main(["events", "--db", db_url]) == 1
    assert "xl-hub db upgrade" in capsys.readouterr().err
    assert main(["run", "--config", _config(tmp_path, db_url)]) == 1
    err = capsys.readouterr().err
    assert "schema_version" in err and "xl-hub db upgrade --config FILE" in err

    assert main(["db", "upgrade", "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert "moved from the old schema_version runner" in out
    # hub_0003 is applied, with the newer rooms' first revisions.
    assert "hub_0003" in out.partition("\napplied ")[2].partition("(at every head")[0]
    assert main(["events", "--db", db_url]) == 0


def _behind_by_one(url: str) -> None:
    """A database Alembic made with the hub branch one revision short of its head."""
    engine = make_engine(url)
    with engine.begin() as conn:
        from hub.db.migrate import alembic_config

        cfg = alembic_config(conn)
        for target in (
            "hub_0006",
            "forward@head",
            "console@head",
            "updates@head",
            "rollout@head",
            "clips@head",
            "configs@head",
            "contacts@head",
            "escalation@head",
            "maintenance@head",
            "bulk@head",
            "health@head",
        ):
            command.upgrade(cfg, target)
    engine.dispose()


def test_the_hub_refuses_a_database_behind_one_head(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _behind_by_one(db_url)
    assert main(["run", "--config", _config(tmp_path, db_url)]) == 1
    err = capsys.readouterr().err
    assert "not at every head (hub at hub_0006, needs hub_0007)" in err
    assert "run `xl-hub db upgrade --config FILE` first" in err

    assert main(["db", "status", "--db", db_url]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["room", "database", "head", "pending"]
    assert out[1].split() == ["hub", "hub_0006", "hub_0007", "hub_0007"]
    assert out[2].split() == ["forward", "forward_0100", "forward_0100", "-"]
    assert out[-1] == "not up to date: run `xl-hub db upgrade`"

    # Only the branch that is behind moves; the others are not touched.
    assert main(["db", "upgrade", "--db", db_url]) == 0
    assert capsys.readouterr().out.startswith("applied hub_0007 (at every head")
    assert main(["db", "status", "--db", db_url]) == 0


def test_the_console_needs_only_its_own_branch(sqlite_url: str) -> None:
    _behind_by_one(sqlite_url)
    engine = make_engine(sqlite_url)
    assert schema_problem(engine, branches=("console",)) is None
    assert schema_problem(engine, branches=("hub",)) is not None
    engine.dispose()


def test_a_revision_from_a_newer_hub_is_named_and_not_touched(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(sqlite_url)
    assert main(["db", "upgrade", "--db", sqlite_url]) == 0
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'hub_0099' WHERE version_num = 'hub_0007'"))
    problem = schema_problem(engine)
    assert problem is not None and "hub_0099" in problem and "newer xl-hub" in problem
    capsys.readouterr()
    assert main(["db", "upgrade", "--db", sqlite_url]) == 1
    assert "hub_0099" in capsys.readouterr().err
    with engine.connect() as conn:
        assert "hub_0099" in conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()

"""Every database the old runner ever made upgrades to exactly what a fresh one is.

The old databases come from tests/support/legacy_schemas (the DDL each past
release's own runner sent), on SQLite and PostgreSQL. "Exactly" is the
reflected schema: tables, columns with types, nullability and defaults,
primary and foreign keys, indexes and unique constraints.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Column, Integer, MetaData, create_engine, inspect, text

from hub.db import make_engine, schema_problem, status, upgrade
from tests.support.legacy_db import STATES, load_legacy, schema_fingerprint


@pytest.fixture(params=["sqlite", "postgres"])
def new_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Callable[[], str]]:  # type: ignore[no-untyped-def]
    """Makes empty databases on one backend: files on SQLite, schemas on PostgreSQL."""
    if request.param == "sqlite":
        yield lambda: f"sqlite:///{tmp_path / uuid.uuid4().hex}.sqlite3"
        return
    admin_url = str(request.getfixturevalue("pg_admin_url"))
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = "xl_mig_" + uuid.uuid4().hex[:10]
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        made.append(name)
        return f"{admin_url}?options=-csearch_path%3D{name}"

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


def _fresh(new_db: Callable[[], str]) -> dict[str, object]:
    engine = make_engine(new_db())
    upgrade(engine)
    try:
        return schema_fingerprint(engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("state", STATES)
def test_an_old_database_upgrades_to_the_fresh_schema(new_db: Callable[[], str], state: str) -> None:
    fresh = _fresh(new_db)
    engine = make_engine(new_db())
    load_legacy(engine, state)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO townships (code, name) VALUES ('01', '泉山镇')"))
    problem = schema_problem(engine)
    assert problem is not None and "schema_version" in problem and "xl-hub db upgrade" in problem

    applied = upgrade(engine)
    assert schema_problem(engine) is None
    assert schema_fingerprint(engine) == fresh
    assert not inspect(engine).has_table("schema_version")
    # What the old runner had applied is stamped, not run again: only the rest ran.
    already = {"v1": 1, "v2": 4, "v3": 5, "v4": 6, "v5": 7, "chain": 7}[state]
    # The old runner knew nothing of the updates and rollout rooms (issue 17) nor clips
    # (issue 18) nor configs (issue 20), nor hub_0006 (issue 20) and hub_0007 (issue 21): they always run.
    # + maintenance_0001, bulk_0001, health_0001; contacts, escalation (issue 21)
    assert len(applied) == 17 - already + 2
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM townships")).scalar_one() == "泉山镇"
    assert upgrade(engine) == []
    engine.dispose()


def test_a_database_missing_migration_3_is_not_ready_and_gets_3(new_db: Callable[[], str]) -> None:
    """The old runner's defect: it compared the highest version, so {1, 2, 4, 5, ...} passed.

    Built from what release 2651179 made (it still has the index migration 3
    drops) with 4 and 5 applied and recorded the way the old runner did."""
    fresh = _fresh(new_db)
    engine = make_engine(new_db())
    load_legacy(engine, "v2")
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE alerts ADD COLUMN delay_s INTEGER")
        conn.exec_driver_sql("ALTER TABLE snapshots ADD COLUMN box JSON")
        for version in (4, 5):
            conn.execute(
                text("INSERT INTO schema_version (version, description, applied_ms) VALUES (:v, 'x', 0)"),
                {"v": version},
            )
    assert "ix_events_household_time" in {i["name"] for i in inspect(engine).get_indexes("events")}
    assert schema_problem(engine) is not None

    assert sorted(upgrade(engine)) == [
        "bulk_0001",
        "clips_0001",
        "clips_0002",
        "configs_0001",
        "contacts_0001",
        "escalation_0001",
        "health_0001",
        "hub_0003",
        "hub_0006",
        "hub_0007",
        "maintenance_0001",
        "rollout_0001",
        "updates_0001",
    ]
    assert "ix_events_household_time" not in {i["name"] for i in inspect(engine).get_indexes("events")}
    assert schema_fingerprint(engine) == fresh
    engine.dispose()


def test_a_failed_upgrade_changes_nothing(new_db: Callable[[], str]) -> None:
    """One transaction for the whole upgrade, DDL included, on SQLite too.

    The database says 1, 2, 100, 200 but someone added alerts.delay_s by hand:
    hub_0003 drops the index, then hub_0004 fails on the existing column. The
    drop, the stamps and everything else must be undone."""
    engine = make_engine(new_db())
    load_legacy(engine, "v2")
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE alerts ADD COLUMN delay_s INTEGER")
    before = schema_fingerprint(engine)
    with pytest.raises(Exception, match="delay_s"):
        upgrade(engine)
    assert schema_fingerprint(engine) == before  # index still there, schema_version kept, no alembic_version
    engine.dispose()


def test_the_live_tables_are_what_the_migrations_make(new_db: Callable[[], str]) -> None:
    """The code's Table objects and the revisions must not drift: a column added
    to a live table without a revision fails here (shown by adding one)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    import hub.db.schema_ops  # noqa: F401  (its tables join hub.db.schema.metadata)
    from hub.bulk.tables import metadata as bulk_meta
    from hub.clips.tables import metadata as clips_meta
    from hub.configs.tables import metadata as configs_meta
    from hub.console.tables import metadata as console_meta
    from hub.contacts.tables import metadata as contacts_meta
    from hub.db.schema import metadata as hub_meta
    from hub.escalation.tables import metadata as escalation_meta
    from hub.forward.tables import metadata as forward_meta
    from hub.health.tables import metadata as health_meta
    from hub.maintenance.tables import metadata as maintenance_meta
    from hub.rollout.tables import metadata as rollout_meta
    from hub.updates.tables import metadata as updates_meta

    engine = make_engine(new_db())
    upgrade(engine)

    def diff(*metas: MetaData) -> list[object]:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
            found = compare_metadata(ctx, list(metas))
        # alembic_version is Alembic's own table, in no MetaData.
        return [d for d in found if not (d[0] == "remove_table" and d[1].name == "alembic_version")]

    rooms = (forward_meta, console_meta, updates_meta, rollout_meta, clips_meta, configs_meta, maintenance_meta)
    rooms += (bulk_meta,)
    rooms += (contacts_meta, escalation_meta)
    rooms += (health_meta,)
    assert diff(hub_meta, *rooms) == []
    drifted = MetaData()
    for table in hub_meta.tables.values():
        table.to_metadata(drifted)
    drifted.tables["events"].append_column(Column("added_later", Integer))
    assert [d[0] for d in diff(drifted, *rooms)] == ["add_column"]
    engine.dispose()


def test_status_names_each_branch_and_an_empty_database(new_db: Callable[[], str]) -> None:
    engine = make_engine(new_db())
    assert schema_problem(engine) == "the database has no tables yet: run `xl-hub db upgrade` first"
    st = status(engine)
    assert [(b.branch, b.current, b.head) for b in st.branches] == [
        ("hub", None, "hub_0007"),
        ("forward", None, "forward_0100"),
        ("console", None, "console_0200"),
        ("updates", None, "updates_0001"),
        ("rollout", None, "rollout_0001"),
        ("clips", None, "clips_0002"),
        ("configs", None, "configs_0001"),
        ("contacts", None, "contacts_0001"),
        ("escalation", None, "escalation_0001"),
        ("bulk", None, "bulk_0001"),
        ("maintenance", None, "maintenance_0001"),
        ("health", None, "health_0001"),
    ]
    assert st.branches[0].pending == (
        "hub_0001",
        "hub_0002",
        "hub_0003",
        "hub_0004",
        "hub_0005",
        "hub_0006",
        "hub_0007",
    )
    upgrade(engine)
    assert status(engine).up_to_date
    engine.dispose()


def test_two_upgrades_at_once_take_turns(new_db: Callable[[], str]) -> None:
    """Two hub workers running `xl-hub db upgrade` together: one applies, the other finds nothing to do."""
    import threading

    url = new_db()
    results: list[list[str]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run() -> None:
        engine = make_engine(url)
        try:
            start.wait()
            results.append(upgrade(engine))
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(len(r) for r in results) == [0, 17 + 2]  # + contacts_0001, escalation_0001 (issue 21)

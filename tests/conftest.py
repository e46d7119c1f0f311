"""Shared fixtures: real databases (SQLite file, PostgreSQL schema) and brokers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get("XL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_available() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # pragma: no cover - depends on the machine
        return str(exc)[:200]


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    problem = _pg_available()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {PG_ADMIN_URL} is required in CI: {problem}")
        pytest.skip(f"PostgreSQL not reachable: {problem}")
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards,
    so tests (and engineers running them at once) never see each other's rows."""
    name = "xl_" + uuid.uuid4().hex[:12]
    admin = create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    try:
        yield f"{pg_admin_url}?options=-csearch_path%3D{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'hub.sqlite3'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Run a test on both backends."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """A provisioned county (CA, identities, registry) and its Mosquitto running
    the generated TLS/ACL config: (tests.support.provisioned_county.County, Broker).
    A module may define its own ``county`` (the console's does) to mean something else."""
    from tests.support.broker import run_broker
    from tests.support.provisioned_county import build_county

    c = build_county(tmp_path_factory.mktemp("county"))
    with run_broker(c.conf(), port=c.port) as broker:
        yield c, broker
    c.engine.dispose()


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``make test`` (pytest-xdist): a module is one unit of work, so a module-scoped
    fixture (a county, an end-to-end hub) is built once; and the emulated Pi's tests are one
    unit, so its two modules never run at once (they share the arm64 root filesystem, the
    wheel caches and ~10 minutes of mostly one core under qemu). With ``--no-loadscope-reorder``
    units go out in collection order, and the Pi's comes first (below): started last, it
    would be the tail of the run while the other worker sat idle.

    (xdist's own ``--dist loadgroup`` cannot do this with pytest 9, whose node ids no longer
    take the ``@group`` suffix xdist writes.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ByModule(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "tests/pi" if module.startswith("tests/pi/") else module

    return ByModule(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith("tests/pi/"))  # stable: the rest keep their order

"""The batch insert under ingest and the forward outbox, on both backends."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Integer, MetaData, String, Table, Text, UniqueConstraint, select

from hub.db import make_engine
from hub.db.bulk import insert_new

meta = MetaData()
things = Table(
    "bulk_things",
    meta,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("k", String(40), nullable=False),
    Column("n", BigInteger, nullable=False),
    Column("note", Text, nullable=True),
    Column("flag", Boolean, nullable=True),
    Column("small", Integer, nullable=True),
    UniqueConstraint("k", "n"),
)
COLUMNS = (("k", "varchar"), ("n", "bigint"), ("note", "text"), ("flag", "boolean"), ("small", "integer"))


def test_new_rows_are_returned_and_conflicts_skipped(db_url: str) -> None:
    engine = make_engine(db_url)
    meta.create_all(engine)
    # Quotes, backslashes, braces and CJK travel intact; a column that is None in
    # every row (psycopg cannot infer an array type from it) still inserts.
    odd = '{"z":"门\\\\口","q":"\\"x\\""} , {NULL}'
    rows = [(f"dev{i % 3}", 2**40 + i, odd if i == 4 else None, None, None) for i in range(10)]
    rows.append(rows[2])  # repeated inside the batch: inserted once
    with engine.begin() as conn:
        first = insert_new(conn, "bulk_things", COLUMNS, rows, ("k", "n"), ("k", "n"))
    assert sorted(first) == sorted((r[0], r[1]) for r in rows[:10])
    more = [(f"dev{i % 3}", 2**40 + i, None, i % 2 == 0, i) for i in range(8, 14)]
    with engine.begin() as conn:
        second = insert_new(conn, "bulk_things", COLUMNS, more, ("k", "n"), ("n",))
        stored = conn.execute(select(things.c.note, things.c.flag, things.c.small).where(things.c.n == 2**40 + 4)).one()
        flags = dict(conn.execute(select(things.c.n, things.c.flag).where(things.c.n >= 2**40 + 10)).all())
        total = conn.execute(select(things.c.id)).all()
    assert sorted(second) == [(2**40 + i,) for i in range(10, 14)]
    assert tuple(stored) == (odd, None, None)
    assert flags == {2**40 + i: i % 2 == 0 for i in range(10, 14)}
    assert len(total) == 14
    meta.drop_all(engine)
    engine.dispose()


def test_sqlite_batches_over_the_parameter_limit_are_split(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    meta.create_all(engine)
    rows = [("k", i, None, True, 1) for i in range(7_001)]  # 35,005 parameters in one batch
    with engine.begin() as conn:
        assert len(insert_new(conn, "bulk_things", COLUMNS, rows, ("k", "n"), ("n",))) == 7_001
    engine.dispose()

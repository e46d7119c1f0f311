"""A database error never carries the statement's values: SQLAlchemy's message would
name them ("[parameters: ...]") and the console logs an unhandled error with its
traceback. A contact saved while the database is locked or down put the phone
number into the hub's log (attack review)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from hub.db import make_engine

PHONE = "13812345678"


def test_a_failed_statement_does_not_name_its_values(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn, pytest.raises(DBAPIError) as exc:
            conn.execute(text("INSERT INTO no_such_table (phone) VALUES (:phone)"), {"phone": PHONE})
        assert PHONE not in str(exc.value) and PHONE not in repr(exc.value)
    finally:
        engine.dispose()

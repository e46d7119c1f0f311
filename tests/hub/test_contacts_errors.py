"""A contact refused for a value in the wrong column never echoes that value when it
looks like a phone number: the error goes into the console's redirect URL (and so
the access log) and into ``xl-provision contacts import``'s output (attack review)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from hub.contacts.csv_import import import_csv
from hub.contacts.store import ContactError, ContactIn, resolve
from hub.db import make_engine
from tests.support.hub_db import make_fleet

PHONE = "13812345678"


@pytest.fixture
def engine(sqlite_url: str) -> Engine:
    engine = make_engine(sqlite_url)
    make_fleet(engine, groups=1, per_group=1)
    return engine


@pytest.mark.parametrize(
    "contact",
    [
        ContactIn("sh1", "王治安", "security_head", "13900000000", None, PHONE),  # the phone in the village column
        ContactIn("td1", "李值班", "township_duty", "13900000000", PHONE, None),  # ... in the township column
        ContactIn("sh1", "王治安", "security_head", "13900000000", PHONE, "和平村"),
    ],
)
def test_a_phone_in_the_wrong_column_is_not_echoed(engine: Engine, contact: ContactIn) -> None:
    with engine.connect() as conn, pytest.raises(ContactError) as exc:
        resolve(conn, contact)
    assert exc.value.column in ("village", "township")
    assert PHONE not in str(exc.value), str(exc.value)


def test_the_csv_import_does_not_echo_a_shifted_phone(engine: Engine) -> None:
    # One comma missing before the phone: it lands in the township column.
    text = f"id,name,role,phone,township,village\ntd1,李值班,township_duty,13900000000,{PHONE},\n"
    result = import_csv(engine, text)
    assert result.errors and not any(PHONE in e for e in result.errors), result.errors


def test_a_duplicate_id_that_is_a_phone_is_not_echoed(engine: Engine) -> None:
    # The name column left out: every value one column to the left, the phone in the id column.
    row = f"{PHONE},security_head,13900000000,,和平村\n"
    result = import_csv(engine, "id,name,role,phone,village\n" + row + row)
    assert result.errors and not any(PHONE in e for e in result.errors), result.errors


def test_a_row_with_more_cells_than_the_header_is_refused_by_number(engine: Engine) -> None:
    # A phone typed with commas (138,1234,5678) in a file Excel did not quote: the import crashed.
    text = "id,name,role,phone,village\nsh1,王治安,security_head,138,1234,5678,和平村\n"
    result = import_csv(engine, text)
    assert result.errors == ["row 2: 7 cells, the header has 5"], result.errors

"""A household's phone is personal information: the group API (/api/groups/{id},
open to viewers) gave it whole; it is masked there like a contact's (attack review)."""

from __future__ import annotations

import re
import warnings

from sqlalchemy import update

from hub.config_console import ConsoleSettings
from hub.console.app import create_app
from hub.console.context import ConsoleContext
from hub.db import make_engine
from hub.db.schema import households
from tests.support.console import PASSWORD, make_users
from tests.support.hub_db import make_fleet

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

PHONE = "13812345678"


def test_the_group_api_masks_household_phones(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    make_fleet(engine, groups=1, per_group=2)
    make_users(engine)
    with engine.begin() as conn:
        conn.execute(update(households).values(phone=PHONE))
    for user in ("viewer1", "op1", "admin1"):
        cl = TestClient(create_app(ConsoleContext(engine, ConsoleSettings())))
        page = cl.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        cl.post("/login", data={"username": user, "password": PASSWORD, "csrf": token, "next": "/"})
        got = cl.get("/api/groups/g000")
        assert got.status_code == 200, got.text
        members = got.json()["members"]
        assert members and PHONE not in got.text, user
        assert {m["phone"] for m in members} == {"138****5678"}
        assert PHONE not in cl.get("/groups/g000").text
    engine.dispose()

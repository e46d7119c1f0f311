"""The console's maintenance page, snooze and recovery notices: roles, CSRF and
audit rows, on SQLite and PostgreSQL (no browser; tests/hub/test_console_maintenance_web.py
has the page in Chromium)."""

from __future__ import annotations

import re
import warnings

import pytest
from sqlalchemy import select

from hub.console.app import ConsoleContext, ConsoleSettings, create_app
from hub.console.tables import console_audit
from hub.db import make_engine
from hub.db.schema import villages
from hub.db.schema_ops import alarms
from hub.health.alarms import record_notice
from hub.maintenance import service as mnt
from hub.maintenance.tables import alarm_snoozes, maintenance_windows
from tests.support.console import PASSWORD, County, make_users, now_ms, seed_county

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def county(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    c = seed_county(engine)
    make_users(engine)
    yield c
    engine.dispose()


def client(county: County) -> TestClient:
    return TestClient(create_app(ConsoleContext(county.engine, ConsoleSettings())))


def login(cl: TestClient, user: str) -> None:
    token = re.search(r'name="csrf" value="([^"]+)"', cl.get("/login").text).group(1)  # type: ignore[union-attr]
    resp = cl.post("/login", data={"username": user, "password": PASSWORD, "csrf": token, "next": "/"})
    assert resp.status_code == 200


def csrf_of(cl: TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', cl.get("/maintenance").text).group(1)  # type: ignore[union-attr]


def audit_rows(county: County, action: str) -> list[tuple[str | None, str | None, str | None]]:
    with county.engine.connect() as conn:
        q = select(console_audit).where(console_audit.c.action == action).order_by(console_audit.c.id)
        return [(r.user_name, r.target, r.detail) for r in conn.execute(q)]


def window_rows(county: County) -> list[tuple[str, str, str]]:
    with county.engine.connect() as conn:
        q = select(maintenance_windows).order_by(maintenance_windows.c.id)
        return [(r.scope, r.target, r.reason) for r in conn.execute(q)]


def local(ms: int) -> str:
    from datetime import datetime

    from hub.console.i18n import TZ

    return datetime.fromtimestamp(ms / 1000, TZ).strftime("%Y-%m-%dT%H:%M")


# A window on now, in county time as the form's datetime-local inputs send it.
FROM_MS = (now_ms() // 60_000 - 60) * 60_000
UNTIL_MS = FROM_MS + 4 * 3_600_000
FORM = {"scope": "group", "target": "g0101-01", "from": local(FROM_MS), "until": local(UNTIL_MS)}


def test_adding_and_ending_a_window_needs_an_operator_and_the_token(county: County) -> None:
    viewer = client(county)
    login(viewer, "viewer1")
    page = viewer.get("/maintenance")
    assert page.status_code == 200 and 'action="/maintenance"' not in page.text  # no form for a viewer
    form = {**FORM, "reason": "电网检修"}
    assert viewer.post("/maintenance", data={**form, "csrf": csrf_of(viewer)}).status_code == 403
    op = client(county)
    login(op, "op1")
    assert op.post("/maintenance", data=form).status_code == 403  # no token
    assert op.post("/maintenance", data={**form, "csrf": "forged"}).status_code == 403
    assert window_rows(county) == [] and audit_rows(county, "maintenance_add") == []
    resp = op.post("/maintenance", data={**form, "csrf": csrf_of(op)}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/maintenance?notice=added"
    assert window_rows(county) == [("group", "g0101-01", "电网检修")]
    [(who, target, detail)] = audit_rows(county, "maintenance_add")
    assert (who, target) == ("op1", "group:g0101-01") and (detail or "").endswith(": 电网检修")
    [w] = mnt.active_windows(county.engine, now_ms())
    assert (w.from_ms, w.until_ms, w.created_by) == (FROM_MS, UNTIL_MS, "op1")
    listed = op.get("/maintenance").text
    assert f'<tr data-window="{w.id}" class="on">' in listed and f'action="/maintenance/{w.id}/end"' in listed
    assert viewer.post(f"/maintenance/{w.id}/end", data={"csrf": csrf_of(viewer)}).status_code == 403
    resp = op.post(f"/maintenance/{w.id}/end", data={"csrf": csrf_of(op)}, follow_redirects=False)
    assert resp.headers["location"] == "/maintenance?notice=ended"
    assert audit_rows(county, "maintenance_end") == [("op1", str(w.id), None)]
    again = op.post(f"/maintenance/{w.id}/end", data={"csrf": csrf_of(op)}, follow_redirects=False)
    assert again.headers["location"] == "/maintenance?notice=not_ended"
    assert len(audit_rows(county, "maintenance_end")) == 1  # nothing done, nothing audited


def test_a_refused_window_names_the_field_and_records_nothing(county: County) -> None:
    op = client(county)
    login(op, "op1")
    token = csrf_of(op)
    for form, field in [
        ({**FORM, "scope": "township", "reason": "x"}, "scope"),
        ({**FORM, "target": "g9999", "reason": "x"}, "target"),
        ({**FORM, "until": local(FROM_MS - 60_000), "reason": "x"}, "until_ms"),
        ({**FORM, "reason": " "}, "reason"),
        ({**FORM, "from": "soon", "reason": "x"}, "from"),
    ]:
        resp = op.post("/maintenance", data={**form, "csrf": token})
        assert resp.status_code == 200 and f"{field}:" in resp.text, field
    assert window_rows(county) == [] and audit_rows(county, "maintenance_add") == []


def test_a_village_window_badges_its_devices_and_their_alarms(county: County) -> None:
    with county.engine.connect() as conn:
        village = conn.execute(select(villages.c.id).where(villages.c.name == "和平村")).scalar_one()
    t = now_ms()
    mnt.add_window(county.engine, "village", str(village), t - 60_000, t + 3_600_000, "村电网检修", "op1")
    cl = client(county)
    login(cl, "viewer1")
    broken = county.devices["g0101-01"][2]  # the seeded camera-error alarm
    device = cl.get(f"/devices/{broken}").text
    assert 'id="maint-badge"' in device and "村电网检修" in device
    assert 'id="maint-badge"' not in cl.get(f"/devices/{county.devices['g0201-01'][0]}").text
    alerts = cl.get("/alerts").text
    row = re.search(r'<tr data-alarm="\d+"[^>]*>.*?</tr>', alerts, re.S)
    assert row is not None and "维护中，至" in row.group(0)
    assert "进行中（3 台设备）" in cl.get("/maintenance").text


def test_snooze_needs_an_operator_is_audited_and_ends(county: County) -> None:
    with county.engine.connect() as conn:
        alarm_id = conn.execute(select(alarms.c.id).where(alarms.c.kind == "camera_error")).scalar_one()
    viewer = client(county)
    login(viewer, "viewer1")
    assert viewer.post(f"/alarms/{alarm_id}/snooze", data={"hours": "4", "csrf": csrf_of(viewer)}).status_code == 403
    op = client(county)
    login(op, "op1")
    assert op.post(f"/alarms/{alarm_id}/snooze", data={"hours": "4"}).status_code == 403
    assert op.post(f"/alarms/{alarm_id}/snooze", data={"hours": "500", "csrf": csrf_of(op)}).status_code == 400
    assert f'action="/alarms/{alarm_id}/snooze"' in op.get("/alerts").text
    resp = op.post(f"/alarms/{alarm_id}/snooze", data={"hours": "4", "csrf": csrf_of(op)}, follow_redirects=False)
    assert resp.headers["location"] == "/alerts?notice=snoozed"
    [(who, target, detail)] = audit_rows(county, "alarm_snooze")
    assert (who, target) == ("op1", str(alarm_id)) and (detail or "").startswith("4 h, until ")
    page = op.get("/alerts").text
    assert "op1 暂缓至" in page and f'action="/alarms/{alarm_id}/snooze"' not in page
    with county.engine.begin() as conn:  # four hours later
        conn.execute(alarm_snoozes.update().values(until_ms=now_ms() - 1))
    assert f'action="/alarms/{alarm_id}/snooze"' in op.get("/alerts").text  # back on the to-do list


def test_recovery_notices_show_in_the_alarms_view(county: County) -> None:
    dev = county.devices["g0201-01"][2]
    t = now_ms()
    with county.engine.begin() as conn:
        record_notice(conn, 41, dev, "offline_armed", t - 120_000, t - 1000, "back online; alarmed for 2 min 0 s")
        record_notice(conn, 42, "broker", "broker_disconnect", t - 90_000, t, "broker back")
    cl = client(county)
    login(cl, "viewer1")
    page = cl.get("/alerts").text
    table = page[page.index('id="notices-table"') :]
    assert table.index('data-notice="42"') < table.index('data-notice="41"')  # newest first
    assert "back online; alarmed for 2 min 0 s" in table and "MQTT 服务器（全县）" in table

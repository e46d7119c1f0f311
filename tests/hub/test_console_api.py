"""The console's JSON API, auth and CSRF on both SQLite and PostgreSQL (no browser)."""

from __future__ import annotations

import re
import warnings

import pytest
from sqlalchemy import func, select

from hub.console.app import ConsoleContext, ConsoleSettings, create_app
from hub.console.auth import Throttle
from hub.console.passwords import verify_password
from hub.console.tables import console_alarm_acks, console_users
from hub.db import make_engine
from hub.db.schema import devices
from hub.db.schema_ops import alarms
from tests.support.console import PASSWORD, County, make_users, seed_county

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


def client(county: County, throttle: Throttle | None = None) -> TestClient:
    settings = ConsoleSettings(throttle=throttle or Throttle())
    return TestClient(create_app(ConsoleContext(county.engine, settings)))


def login(cl: TestClient, user: str, password: str = PASSWORD) -> int:
    page = cl.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    resp = cl.post(
        "/login", data={"username": user, "password": password, "csrf": token, "next": "/"}, follow_redirects=False
    )
    return resp.status_code


def csrf_of(cl: TestClient) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', cl.get("/alerts").text).group(1)  # type: ignore[union-attr]


def test_api_needs_login_and_reports_the_county(county: County) -> None:
    cl = client(county)
    assert cl.get("/api/overview").status_code == 401
    assert cl.get("/devices", follow_redirects=False).headers["location"] == "/login?next=%2Fdevices"
    assert login(cl, "viewer1") == 303
    live = cl.get("/api/live").json()
    assert (live["devices"], live["online"], live["offline"]) == (9, 8, 1)
    assert live["open_alarms"] >= 1 and live["unacked_alarms"] == live["open_alarms"]
    assert live["events_today"] == 3 and live["persons_today"] == 1 and live["panics_today"] == 1
    ov = cl.get("/api/overview").json()
    assert [t["name"] for t in ov["breakdown"]] == ["泉山镇", "薛百镇"]
    assert sum(v["n"] for t in ov["breakdown"] for v in t["villages"]) == 9
    worst = ov["worst"]
    assert worst[0]["id"] == county.devices["g0201-01"][2] and "offline" in worst[0]["problems"]
    assert worst[1]["id"] == county.devices["g0101-01"][2] and "camera_error" in worst[1]["problems"]
    dev = cl.get(f"/api/devices/{county.devices['g0101-01'][2]}").json()
    assert dev["health"]["cam"] == "error" and dev["history"][0]["temp_max"] == 78.0
    events = cl.get("/api/events", params={"kind": "person"}).json()
    assert [(r["kind"], r["phase"]) for r in events["rows"]] == [("person", "end"), ("person", "start")]
    start = events["rows"][1]
    assert start["snapshot_url"] and cl.get(start["snapshot_url"]).content[:2] == b"\xff\xd8"
    alerts = cl.get("/api/alerts").json()["alerts"]
    panic = next(a for a in alerts if a["kind"] == "panic")
    assert panic["status"] == "closed" and panic["first_ack_device"] == county.devices["g0101-02"][1]
    assert panic["responder_name"] and panic["response_ms"] is not None
    groups = {g["id"]: g for g in cl.get("/api/groups").json()["groups"]}
    assert groups["g0101-02"]["median_response_ms"] == panic["response_ms"]
    assert groups["g0101-02"]["leader_name"] == "张家4" and groups["g0201-01"]["online"] == 2
    fw = cl.get("/api/forwarding").json()
    assert {s["sink"]: (s["depth"], s["dead"]) for s in fw["sinks"]} == {"viid": (0, 0), "webhook": (2, 1)}
    assert "/api/devices" in cl.get("/openapi.json").json()["paths"]


def test_filters_are_bound_and_sort_keys_whitelisted(county: County) -> None:
    cl = client(county)
    login(cl, "viewer1")
    everything = cl.get("/api/devices").json()["total"]
    assert everything == 9
    for q in ("' OR 1=1 --", "%' OR '1'='1", '" OR ""="', "1; DROP TABLE devices; --"):
        assert cl.get("/api/devices", params={"q": q}).json()["total"] == 0
    # A malformed number is ignored, not interpreted; an unknown sort key falls back to health order.
    assert cl.get("/api/devices", params={"village": "1 OR 1=1"}).json()["total"] == everything
    injected = cl.get("/api/devices", params={"sort": "id; DROP TABLE devices", "dir": "desc"}).json()
    assert injected["sort"] == "health" and injected["total"] == everything
    assert cl.get("/api/devices", params={"group": "g0101-01' OR '1'='1"}).json()["total"] == 0
    assert cl.get("/api/devices", params={"group": "g0101-01"}).json()["total"] == 3
    assert cl.get("/api/devices", params={"q": "%"}).json()["total"] == 0  # LIKE wildcards are literal
    assert cl.get("/api/events", params={"kind": "person' OR '1'='1"}).json()["total"] == 4  # kind ignored
    assert cl.get("/api/events", params={"device": "x' OR 1=1 --"}).json()["filters"]["device"] == ""
    with county.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(devices)).scalar_one() == 9


def test_csrf_roles_and_alarm_ack(county: County) -> None:
    with county.engine.connect() as conn:
        alarm_id = conn.execute(select(alarms.c.id).where(alarms.c.kind == "camera_error")).scalar_one()
    viewer = client(county)
    login(viewer, "viewer1")
    assert viewer.post(f"/alarms/{alarm_id}/ack", data={"csrf": csrf_of(viewer)}).status_code == 403  # role
    op = client(county)
    login(op, "op1")
    assert op.post(f"/alarms/{alarm_id}/ack", data={}).status_code == 403  # no token
    assert op.post(f"/alarms/{alarm_id}/ack", data={"csrf": "forged"}).status_code == 403
    assert op.post(f"/alarms/{alarm_id}/ack", headers={"X-CSRF-Token": csrf_of(viewer)}).status_code == 403
    assert (
        op.post(f"/devices/{county.devices['g0101-01'][0]}/revoke", data={"csrf": csrf_of(op)}).status_code == 403
    )  # admin only
    with county.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(console_alarm_acks)).scalar_one() == 0
    resp = op.post(f"/alarms/{alarm_id}/ack", data={"csrf": csrf_of(op)}, follow_redirects=False)
    assert resp.status_code == 303
    with county.engine.connect() as conn:
        assert conn.execute(select(console_alarm_acks.c.user_name)).scalars().all() == ["op1"]
    assert op.get("/api/live").json()["unacked_alarms"] == op.get("/api/live").json()["open_alarms"] - 1
    # A POST with no session at all is sent to the login page, never executed.
    assert client(county).post(f"/alarms/{alarm_id}/ack", follow_redirects=False).status_code == 303


def test_passwords_are_scrypt_hashes(county: County) -> None:
    with county.engine.connect() as conn:
        rows = conn.execute(select(console_users.c.name, console_users.c.password_hash)).all()
    assert len(rows) == 3 and len({r.password_hash for r in rows}) == 3  # per-user salt
    for r in rows:
        assert PASSWORD not in r.password_hash
        assert re.fullmatch(r"scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}", r.password_hash)
        assert verify_password(PASSWORD, r.password_hash) and not verify_password(PASSWORD + "x", r.password_hash)


def test_login_lockout(county: County) -> None:
    cl = client(county, Throttle(user_failures=3, ip_failures=50))
    assert [login(cl, "op1", "wrong password") for _ in range(3)] == [401, 401, 401]
    assert login(cl, "op1") == 429  # the right password no longer helps while locked
    assert login(cl, "viewer1") == 303  # other accounts are unaffected
    assert login(cl, "nobody", "whatever") == 401


def test_user_cli(county: County, capsys: pytest.CaptureFixture[str]) -> None:
    from hub.cli import main

    url = county.engine.url.render_as_string(hide_password=False)
    assert main(["user", "add", "zhang.san", "--role", "operator", "--db", url, "--password", "s3cret-pass"]) == 0
    assert main(["user", "add", "li.si", "--role", "viewer", "--db", url, "--password", "short"]) == 2
    with pytest.raises(SystemExit):
        main(["user", "add", "x", "--role", "root", "--db", url, "--password", "s3cret-pass"])
    with county.engine.connect() as conn:
        row = conn.execute(select(console_users).where(console_users.c.name == "zhang.san")).one()
    assert row.role == "operator" and verify_password("s3cret-pass", row.password_hash)
    cl = client(county)
    assert login(cl, "zhang.san", "s3cret-pass") == 303


def test_the_broker_alarm_shows_with_its_text_and_no_device_link(county: County) -> None:
    with county.engine.begin() as conn:
        conn.execute(
            alarms.insert().values(
                device_id="broker",
                kind="broker_disconnect",
                raised_ms=1,
                detail="12 of 12 devices went offline within 10 s",
            )
        )
    cl = client(county)
    assert login(cl, "viewer1") == 303
    page = cl.get("/alerts").text
    assert "MQTT 服务器（全县）" in page and "MQTT 服务器断连，设备集体离线" in page
    assert "12 of 12 devices went offline" in page and 'href="/devices/broker"' not in page
    english = cl.get("/lang", params={"to": "en", "next": "/alerts"}).text
    assert "MQTT broker (county-wide)" in english and "broker-wide disconnect" in english

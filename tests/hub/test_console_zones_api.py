"""The zones editor's routes (issue 20): roles, CSRF, validation naming the key,
a push becoming a history row that the device's ack (through ingest) settles,
village pushes, and the live picture. No browser: test_console_zones_web.py
drives the editor itself."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from sqlalchemy import select

from hub.config_console import ConsoleSettings
from hub.console.app import create_app
from hub.console.context import ConsoleContext
from hub.console.server import MqttPublisher
from hub.console.tables import console_audit
from hub.db import make_engine
from hub.db.schema import households, villages
from protocol.codec import Snapshot, encode, encode_snapshot
from protocol.messages import Ack
from protocol.topics import ack_topic, snap_topic
from tests.support.console import County, jpeg, make_users, now_ms, seed_county

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

GATE = [[0.4, 0.5], [0.6, 0.5], [0.6, 1.0], [0.4, 1.0]]
DOC: dict[str, Any] = {
    "masks": [[[0.0, 0.0], [0.3, 0.0], [0.3, 0.2]]],
    "zones": [{"name": "院门", "polygon": GATE, "kinds": ["person"], "inertia_s": 1.0, "loiter_s": 0}],
    "required_zones": ["院门"],
    "profiles": {"select": "ir", "night": {"score_threshold": 0.6}},
}


class FakeBroker:
    """What MqttPublisher publishes through: records each message instead of sending it."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def publish(self, items: Sequence[tuple[str, bytes, int, Any]], timeout: float = 5.0) -> list[int]:
        self.sent.extend((topic, json.loads(payload)) for topic, payload, _qos, _track in items)
        return [0 for _ in items]

    def is_connected(self) -> bool:
        return True


@pytest.fixture
def county(sqlite_url: str) -> Iterator[County]:
    engine = make_engine(sqlite_url)
    c = seed_county(engine)
    make_users(engine)
    yield c
    engine.dispose()


def client(county: County, broker: FakeBroker | None) -> TestClient:
    publisher = None if broker is None else MqttPublisher(county.engine, broker)
    return TestClient(create_app(ConsoleContext(county.engine, ConsoleSettings(), publisher)))


def login(cl: TestClient, user: str) -> str:
    """Log in; the session's CSRF token."""
    from tests.support.console import PASSWORD

    token = re.search(r'name="csrf" value="([^"]+)"', cl.get("/login").text).group(1)  # type: ignore[union-attr]
    resp = cl.post("/login", data={"username": user, "password": PASSWORD, "csrf": token}, follow_redirects=False)
    assert resp.status_code == 303
    return re.search(r'name="csrf" value="([^"]+)"', cl.get("/alerts").text).group(1)  # type: ignore[union-attr]


def ack(county: County, dev: str, command_id: str, error: str | None = None) -> None:
    """The device's answer, through ingest (which hands it to hub.commands.record_result)."""
    county.send(
        ack_topic(dev), encode(Ack(of="cmd", ref_id=command_id, ok=error is None, error=error, time_ms=now_ms()))
    )


def village_of(county: County, dev: str) -> int:
    from hub.db.schema import devices

    with county.engine.connect() as conn:
        return int(
            conn.execute(
                select(households.c.village_id)
                .join(devices, devices.c.household_id == households.c.id)
                .where(devices.c.id == dev)
            ).scalar_one()
        )


def audits(county: County) -> list[tuple[str, str, str]]:
    with county.engine.connect() as conn:
        rows = conn.execute(
            select(console_audit.c.user_name, console_audit.c.target, console_audit.c.detail)
            .where(console_audit.c.action == "config_push")
            .order_by(console_audit.c.id)
        ).all()
    return [(r.user_name, r.target, r.detail) for r in rows]


def test_page_is_for_everyone_editing_for_operators_village_for_admins(county: County) -> None:
    dev = county.devices["g0101-01"][0]
    cl = client(county, FakeBroker())
    assert cl.get(f"/devices/{dev}/zones", follow_redirects=False).status_code == 303  # login first
    login(cl, "viewer1")
    assert f'href="/devices/{dev}/zones"' in cl.get(f"/devices/{dev}").text
    page = cl.get(f"/devices/{dev}/zones")
    assert page.status_code == 200 and 'data-edit="0"' in page.text
    assert 'id="zn-push"' not in page.text and 'id="zn-live"' not in page.text
    assert "/static/zones.js" in page.text and "<script>" not in page.text  # CSP: no inline script
    assert cl.get(f"/api/devices/{dev}/config").json() == {"current": None, "history": []}
    assert cl.get("/devices/12345/zones").status_code == 400
    assert cl.get("/devices/00000000000000000000/zones").status_code == 404
    assert cl.get("/api/devices/x/config").status_code == 400
    op = client(county, FakeBroker())
    login(op, "op1")
    page = op.get(f"/devices/{dev}/zones").text
    assert 'data-edit="1"' in page and 'id="zn-push"' in page and 'id="zn-push-village"' not in page
    admin = client(county, FakeBroker())
    login(admin, "admin1")
    assert 'id="zn-push-village"' in admin.get(f"/devices/{dev}/zones").text
    english = admin.get("/lang", params={"to": "en", "next": f"/devices/{dev}/zones"}).text
    assert "Push to the device" in english and "Required zones" in english


def test_pushing_needs_an_operator_and_the_csrf_token(county: County) -> None:
    dev = county.devices["g0101-01"][0]
    broker = FakeBroker()
    viewer = client(county, broker)
    token = login(viewer, "viewer1")
    url = f"/api/devices/{dev}/config"
    assert viewer.post(url, json={"vision": DOC}, headers={"X-CSRF-Token": token}).status_code == 403
    op = client(county, broker)
    op_token = login(op, "op1")
    assert op.post(url, json={"vision": DOC}).status_code == 403  # no token
    assert op.post(url, json={"vision": DOC}, headers={"X-CSRF-Token": token}).status_code == 403  # another session's
    assert op.post(f"/api/devices/{dev}/picture").status_code == 403
    assert client(county, broker).post(url, json={"vision": DOC}).status_code == 401  # no session at all
    assert broker.sent == [] and audits(county) == []
    assert op.post(url, json={"vision": DOC}, headers={"X-CSRF-Token": op_token}).status_code == 200


def test_bad_bodies_are_refused_naming_the_key(county: County) -> None:
    dev = county.devices["g0101-01"][0]
    broker = FakeBroker()
    op = client(county, broker)
    h = {"X-CSRF-Token": login(op, "op1")}
    url = f"/api/devices/{dev}/config"

    def refused(body: Any, **kw: Any) -> str:
        resp = op.post(url, headers=h, **({"json": body} if "content" not in kw else kw))
        assert resp.status_code == 400, resp.text
        return str(resp.json()["detail"])

    assert refused(None, content=b"{not json") == "body: not JSON"
    assert refused({"zones": []}).startswith("vision:")
    two_points = {"zones": [{"name": "a", "polygon": [[0, 0], [1, 1]]}]}
    assert refused({"vision": two_points}).startswith("vision.zones[0].polygon:")
    assert refused({"vision": {"masks": [[[0, 0], [640, 0], [0, 1]]]}}).startswith("vision.masks[0][1]:")
    assert refused({"vision": {"detect": {}}}).startswith("vision.detect:")
    missing = {**DOC, "required_zones": ["路"]}
    assert refused({"vision": missing}).startswith("vision.required_zones[0]:")
    assert refused({"vision": DOC, "template": "x" * 65}).startswith("template:")
    # PostgreSQL's text takes no NUL and no database a lone surrogate: a 500 there, once.
    assert refused({"vision": DOC, "template": "a\x00"}).startswith("template:")
    assert refused(None, content=b'{"vision": {"masks": []}, "template": "\\ud800"}').startswith("template:")
    assert op.post("/api/devices/123/config", headers=h, json={"vision": DOC}).status_code == 400
    assert op.post("/api/devices/00000000000000000000/config", headers=h, json={"vision": DOC}).status_code == 404
    assert broker.sent == [] and audits(county) == []


def test_a_body_nested_too_deeply_is_a_400_not_a_server_error(county: County) -> None:
    dev = county.devices["g0101-01"][0]
    broker = FakeBroker()
    op = client(county, broker)
    h = {"X-CSRF-Token": login(op, "op1"), "content-type": "application/json"}
    url = f"/api/devices/{dev}/config"
    deep = b'{"vision": {"profiles": {"day": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}}"
    resp = op.post(url, headers=h, content=deep)
    assert resp.status_code == 400 and resp.json()["detail"] == "body: not JSON"
    inner = b'{"vision": {"profiles": {"day": ' + b"[" * 500 + b"]" * 500 + b"}}}"  # JSON parses this deep
    resp = op.post(url, headers=h, content=inner)
    assert resp.status_code == 400 and resp.json()["detail"].startswith("vision.profiles: nested too deeply")
    assert broker.sent == [] and audits(county) == []


def test_a_push_is_a_history_row_settled_by_the_devices_ack(county: County) -> None:
    dev = county.devices["g0101-01"][0]
    broker = FakeBroker()
    op = client(county, broker)
    h = {"X-CSRF-Token": login(op, "op1")}
    first = op.post(f"/api/devices/{dev}/config", headers=h, json={"vision": DOC}).json()
    assert first["rev"] == 1 and first["error"] is None and first["command_id"]
    [(topic, cmd)] = broker.sent
    assert topic == f"xl/v1/{dev}/cmd" and cmd["op"] == "config" and cmd["id"] == first["command_id"]
    assert cmd["a"] == {"rev": 1, "vision": DOC}
    [row] = op.get(f"/api/devices/{dev}/config").json()["history"]
    assert (row["rev"], row["status"], row["created_by"], row["doc"]) == (1, "sent", "op1", DOC)
    assert audits(county) == [("op1", dev, f"rev=1 id={first['command_id']}")]
    ack(county, dev, first["command_id"])
    state = op.get(f"/api/devices/{dev}/config").json()
    assert state["history"][0]["status"] == "applied" and state["current"] == DOC

    worse = {**DOC, "zones": [{**DOC["zones"][0], "loiter_s": -5}]}
    second = op.post(f"/api/devices/{dev}/config", headers=h, json={"vision": worse}).json()
    assert second["rev"] == 2
    ack(county, dev, second["command_id"], "vision.zones[0].loiter_s: must be >= 0")
    state = op.get(f"/api/devices/{dev}/config").json()
    assert [(r["rev"], r["status"], r["reason"]) for r in state["history"]] == [
        (2, "refused", "vision.zones[0].loiter_s: must be >= 0"),
        (1, "applied", None),
    ]
    assert state["current"] == DOC  # the device kept the old one, and so does the editor
    # Without an MQTT channel nothing is sent, and the page is told why.
    alone = client(county, None)
    h2 = {"X-CSRF-Token": login(alone, "op1")}
    res = alone.post(f"/api/devices/{dev}/config", headers=h2, json={"vision": DOC}).json()
    assert res["command_id"] is None and "no MQTT channel" in res["error"]
    assert alone.post(f"/api/devices/{dev}/picture", headers=h2).status_code == 503


def test_village_push_is_for_admins_and_reaches_every_active_device(county: County) -> None:
    devs = county.devices["g0101-01"]
    vid = village_of(county, devs[0])
    broker = FakeBroker()
    op = client(county, broker)
    h = {"X-CSRF-Token": login(op, "op1")}
    url = f"/api/villages/{vid}/config"
    assert op.post(url, headers=h, json={"vision": DOC, "template": "gate"}).status_code == 403
    admin = client(county, broker)
    h = {"X-CSRF-Token": login(admin, "admin1")}
    assert admin.post(url, headers=h, json={"vision": DOC}).json()["detail"].startswith("template:")
    assert admin.post("/api/villages/x/config", headers=h, json={"vision": DOC, "template": "t"}).status_code == 400
    assert admin.post("/api/villages/9999/config", headers=h, json={"vision": DOC, "template": "t"}).status_code == 404
    bad = {"vision": {"zones": [{"name": "", "polygon": GATE}]}, "template": "t"}
    assert admin.post(url, headers=h, json=bad).json()["detail"].startswith("vision.zones[0].name:")
    assert broker.sent == []
    res = admin.post(url, headers=h, json={"vision": DOC, "template": "和平村 gate"}).json()
    with county.engine.connect() as conn:
        assert conn.execute(select(villages.c.name).where(villages.c.id == vid)).scalar_one() == "和平村"
    assert sorted(r["device_id"] for r in res["results"]) == sorted(devs)
    assert all(r["rev"] == 1 and r["command_id"] and r["error"] is None for r in res["results"])
    assert sorted(topic for topic, _ in broker.sent) == sorted(f"xl/v1/{d}/cmd" for d in devs)
    for d in devs:
        [row] = admin.get(f"/api/devices/{d}/config").json()["history"]
        assert row["template"] == "和平村 gate" and row["created_by"] == "admin1"
    assert [(u, t) for u, t, _ in audits(county)] == [("admin1", r["device_id"]) for r in res["results"]]
    assert all(f"template=和平村 gate village={vid}" in d for _, _, d in audits(county))


def test_live_picture_is_the_snapshot_command_and_the_next_whole_frame(county: County) -> None:
    dev = county.devices["g0101-01"][0]  # has an event's whole-frame snapshot from the seed
    broker = FakeBroker()
    op = client(county, broker)
    h = {"X-CSRF-Token": login(op, "op1")}
    before = op.get(f"/api/devices/{dev}/picture").json()["picture"]
    county.send(
        snap_topic(dev), encode_snapshot(Snapshot(99, "start", now_ms(), 320, 180, jpeg(), crop=(100, 100, 600, 900)))
    )
    assert op.get(f"/api/devices/{dev}/picture").json()["picture"] == before
    asked = op.post(f"/api/devices/{dev}/picture", headers=h).json()
    [(_, cmd)] = broker.sent
    assert cmd["op"] == "snapshot" and cmd["id"] == asked["command_id"]
    poll = f"/api/devices/{dev}/picture?after={asked['since_ms']}&command={asked['command_id']}"
    assert op.get(poll).json() == {"picture": None, "command": {"ack_ms": None, "ok": None, "error": None}}
    county.send(snap_topic(dev), encode_snapshot(Snapshot((9 << 32) + 1, "start", now_ms(), 640, 360, jpeg(640, 360))))
    got = op.get(poll).json()["picture"]
    assert (got["width"], got["height"]) == (640, 360) and op.get(got["url"]).content[:2] == b"\xff\xd8"
    assert op.get(f"/devices/{dev}/zones").text.count(got["url"]) == 1  # the page opens on it next time
    assert op.get(f"/api/devices/{dev}/picture?after=soon").status_code == 400
    ack(county, dev, asked["command_id"], "camera: no frame")
    assert op.get(poll).json()["command"]["error"] == "camera: no frame"

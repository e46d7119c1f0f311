"""The console's escalation pages (issue 21) on SQLite and PostgreSQL, without a browser:
phones masked for viewers and operators and whole for admins, an operator taking over, the
gateway's signed acknowledgement callback (and what it refuses), the live poll's JSON."""

from __future__ import annotations

import json
import re
import time
import warnings
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from hub.config_console import ConsoleSettings
from hub.config_escalation import EscalationConfig, RoleWebhook
from hub.console.app import create_app
from hub.console.context import ConsoleContext
from hub.console.tables import console_audit
from hub.contacts.csv_import import import_csv
from hub.db import make_engine
from hub.db.schema_ops import alerts
from hub.escalation.channels import BuzzerChannel, ConsoleChannel, Notice
from hub.escalation.engine import Escalator
from hub.escalation.tables import escalation_notices, escalations
from hub.forward.webhook import sign
from tests.support.console import PASSWORD, make_users
from tests.support.hub_db import make_fleet

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SECRET = "k" * 20
CFG = EscalationConfig(enabled=True, webhooks={"security_head": RoleWebhook(url="http://gw.test/", secret=SECRET)})
CSV = "id,name,role,phone,village\nsh1,王治安,security_head,13812345678,和平村\n"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    fleet = make_fleet(engine, groups=1, per_group=2)
    make_users(engine)
    assert not import_csv(engine, CSV).errors
    now = int(time.time() * 1000)
    with engine.begin() as conn:
        row = {"id": "al1", "kind": "panic", "household_id": "HH00000", "group_id": "g000", "status": "open"}
        conn.execute(alerts.insert().values(**row, origin_device=fleet["g000"][0], raised_ms=now))
    Escalator(engine, CFG, [BuzzerChannel(), ConsoleChannel()]).start_chains(now)
    with engine.begin() as conn:  # step 2's webhook notice to sh1, as the chain records it
        n = Notice("webhook", "sh1", "queued")
        conn.execute(escalation_notices.insert().values(alert_id="al1", step=2, channel=n.channel, target=n.target,
                                                        at_ms=now, result=n.result))  # fmt: skip
    yield engine
    engine.dispose()


def client(engine: Engine, user: str | None = None) -> TestClient:
    cl = TestClient(create_app(ConsoleContext(engine, ConsoleSettings(), escalation=CFG)))
    if user is not None:
        page = cl.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        cl.post("/login", data={"username": user, "password": PASSWORD, "csrf": token, "next": "/"})
    return cl


def signed(body: dict[str, str], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    ts = str(int(time.time()))
    return raw, {"X-XL-Timestamp": ts, "X-XL-Signature": sign(secret.encode(), ts, raw)}


def test_phones_are_masked_except_for_admins(engine: Engine) -> None:
    for user in ("viewer1", "op1"):
        page = client(engine, user).get("/contacts").text
        assert "138****5678" in page and "13812345678" not in page, user
    assert "13812345678" in client(engine, "admin1").get("/contacts").text
    assert "13812345678" not in client(engine, "op1").get("/escalation").text


def test_an_operator_takes_over_and_it_is_audited(engine: Engine) -> None:
    cl = client(engine, "op1")
    live = cl.get("/api/escalation/live").json()
    assert [(c["alert_id"], c["status"]) for c in live["chains"]] == [("al1", "running")]
    csrf = re.search(r'name="csrf" value="([^"]+)"', cl.get("/escalation").text).group(1)  # type: ignore[union-attr]
    assert cl.post("/escalation/al1/ack", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    viewer = client(engine, "viewer1")
    assert viewer.post("/escalation/al1/ack", data={"csrf": "x"}, follow_redirects=False).status_code == 403
    with engine.connect() as conn:
        chain = conn.execute(select(escalations)).one()
        audit = conn.execute(select(console_audit.c.user_name, console_audit.c.action, console_audit.c.target)).all()
    assert (chain.status, chain.acked_by, chain.ack_channel) == ("acked", "op1", "console")
    assert ("op1", "escalation_ack", "al1") in [tuple(a) for a in audit]


def test_the_gateways_signed_callback_acknowledges_once(engine: Engine) -> None:
    cl = client(engine)  # no session: the gateway has none
    raw, headers = signed({"alert_id": "al1", "contact_id": "sh1"}, secret="w" * 20)
    assert cl.post("/api/escalation/ack", content=raw, headers=headers).status_code == 401
    raw, headers = signed({"alert_id": "other", "contact_id": "sh1"})
    assert cl.post("/api/escalation/ack", content=raw, headers=headers).status_code == 404
    raw, headers = signed({"alert_id": "al1", "contact_id": "sh1"})
    assert cl.post("/api/escalation/ack", content=raw, headers=headers).json() == {"acknowledged": True}
    assert cl.post("/api/escalation/ack", content=raw, headers=headers).json() == {"acknowledged": False}
    with engine.connect() as conn:
        chain = conn.execute(select(escalations)).one()
        alert = conn.execute(select(alerts)).one()
    assert (chain.acked_by, chain.ack_channel, alert.close_reason) == ("sh1", "webhook", "webhook")


def test_admins_add_and_disable_contacts_viewers_cannot(engine: Engine) -> None:
    admin = client(engine, "admin1")
    csrf = re.search(r'name="csrf" value="([^"]+)"', admin.get("/contacts").text).group(1)  # type: ignore[union-attr]
    form = {"csrf": csrf, "contact_id": "td9", "name": "值班", "role": "township_duty", "phone": "137 0000 9999"}
    resp = admin.post("/contacts", data={**form, "township": "泉山镇"}, follow_redirects=False)
    assert resp.headers["location"] == "/contacts?notice=saved"
    bad = admin.post("/contacts", data=form, follow_redirects=False)  # no township: refused, naming the column
    assert "township" in bad.headers["location"] and "9999" not in bad.headers["location"]
    admin.post("/contacts/td9/active", data={"csrf": csrf, "active": "0"})
    viewer = client(engine, "viewer1")
    assert viewer.post("/contacts", data={**form, "csrf": "x"}).status_code == 403
    page = viewer.get("/contacts").text
    assert "137****9999" in page and "13700009999" not in page
    with engine.connect() as conn:
        from hub.contacts.tables import contacts

        row = conn.execute(select(contacts).where(contacts.c.id == "td9")).one()
    assert (row.phone, row.active, row.township_code) == ("13700009999", False, "01")

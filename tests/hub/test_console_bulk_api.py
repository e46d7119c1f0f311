"""Bulk operations, the audit log viewer and the case export through the console's HTTP
routes (no browser, no broker), on SQLite and PostgreSQL: roles, CSRF, audit rows, CSV, zip."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from hub.bulk.tables import bulk_jobs
from hub.clips.files import files_of
from hub.clips.tables import clips
from hub.config_console import ConsoleSettings
from hub.console.app import create_app
from hub.console.auth import audit
from hub.console.clip_source import HubClips
from hub.console.context import ConsoleContext
from hub.console.tables import console_audit
from hub.db import make_engine
from hub.db.schema_ops import events
from tests.support.console import PASSWORD, County, make_users, now_ms, seed_county
from tests.support.wait import wait_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


class AckingPublisher:
    """``CommandPublisher`` over hub.commands.send_command whose devices answer at once, except ``silent``."""

    def __init__(self, county: County, silent: set[str]) -> None:
        self.county, self.silent = county, silent

    def send(self, device_id: str, op: str, args: dict[str, Any] | None, expires_ms: int | None = None) -> str:
        from hub.commands import send_command

        cid = send_command(self.county.engine, self, device_id, op, args, expires_ms)
        if device_id not in self.silent:
            from hub.commands import record_result
            from protocol.messages import Ack

            with self.county.engine.begin() as conn:
                record_result(conn, device_id, Ack(of="cmd", ref_id=cid, ok=True, time_ms=now_ms()), now_ms())
        return cid

    def publish(self, items: Any, timeout: float = 5.0) -> list[int]:
        return [0 for _ in items]

    def is_connected(self) -> bool:
        return True


@pytest.fixture
def county(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    c = seed_county(engine)
    make_users(engine)
    yield c
    engine.dispose()


def client(county: County, publisher: Any = None, clip_root: Path | None = None) -> TestClient:
    source = None if clip_root is None else HubClips(county.engine, clip_root, publisher)
    return TestClient(create_app(ConsoleContext(county.engine, ConsoleSettings(), publisher, source)))


def login(cl: TestClient, user: str) -> str:
    token = re.search(r'name="csrf" value="([^"]+)"', cl.get("/login").text).group(1)  # type: ignore[union-attr]
    resp = cl.post("/login", data={"username": user, "password": PASSWORD, "csrf": token}, follow_redirects=False)
    assert resp.status_code == 303
    return re.search(r'name="csrf" value="([^"]+)"', cl.get("/alerts").text).group(1)  # type: ignore[union-attr]


def audit_rows(engine: Engine, action: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(console_audit).where(console_audit.c.action == action)))


def test_roles_and_csrf_guard_every_bulk_route(county: County) -> None:
    pub = AckingPublisher(county, silent=set())
    cl = client(county, pub)
    assert cl.get("/api/bulk/preview?township=01").status_code == 401
    viewer = login(cl, "viewer1")
    preview = cl.get("/api/bulk/preview", params={"township": "01"}).json()
    assert preview["count"] == 6 and len(preview["devices"]) == 6
    assert cl.get("/api/bulk/preview").json()["count"] == 0  # no criterion: nothing
    assert cl.get("/bulk?township=01").status_code == 200
    body = {"action": "arm", "township": "01", "expiry_s": 60}
    assert cl.post("/api/bulk/jobs", json=body, headers={"x-csrf-token": viewer}).status_code == 403  # a viewer
    op = client(county, pub)
    token = login(op, "op1")
    assert op.post("/api/bulk/jobs", json=body).status_code == 403  # no CSRF token
    assert op.post("/api/bulk/jobs", json=body, headers={"x-csrf-token": "x" * 43}).status_code == 403
    assert op.post("/bulk/jobs", data={"action": "arm", "township": "01"}, follow_redirects=False).status_code == 403
    # Config pushes to a selection are admin-only, as the zones editor's village push.
    cfg = {"action": "config", "group": "g0101-01", "vision": json.dumps({"zones": []}), "expiry_s": 60}
    assert op.post("/api/bulk/jobs", json=cfg, headers={"x-csrf-token": token}).status_code == 403
    with county.engine.connect() as conn:
        assert conn.execute(select(bulk_jobs)).first() is None
    assert op.post("/api/bulk/jobs", json={**body, "township": ""}, headers={"x-csrf-token": token}).status_code == 400
    made = op.post("/api/bulk/jobs", json=body, headers={"x-csrf-token": token})
    assert made.status_code == 201 and made.json()["total"] == 6
    admin = client(county, pub)
    admin_token = login(admin, "admin1")
    assert admin.post("/api/bulk/jobs", json=cfg, headers={"x-csrf-token": admin_token}).status_code == 201
    wait_for(lambda: not _pending(county.engine), 10, "both jobs' sending threads done")  # before the schema goes


def _pending(engine: Engine) -> int:
    from sqlalchemy import func

    from hub.bulk.tables import bulk_results

    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(bulk_results.c.status == "pending")).scalar_one())


def test_a_bulk_arm_is_audited_at_its_start_and_its_end(county: County) -> None:
    offline = county.devices["g0201-01"][2]
    cl = client(county, AckingPublisher(county, silent={offline}))
    token = login(cl, "op1")
    made = cl.post(
        "/api/bulk/jobs", json={"action": "arm", "township": "02", "expiry_s": 2}, headers={"x-csrf-token": token}
    )
    job_id = made.json()["id"]

    def job() -> dict[str, Any]:
        return cl.get(f"/api/bulk/jobs/{job_id}").json()  # type: ignore[no-any-return]

    wait_for(lambda: job()["counts"]["ok"] == 2, 10, "two devices acked")
    assert not job()["done"] and job()["counts"]["sent"] == 1
    [start] = audit_rows(county.engine, "bulk_arm")
    assert (start.user_name, start.target, start.detail) == ("op1", f"job {job_id}", "township=02 n=3 expiry=2s")
    wait_for(lambda: job()["done"], 10, "the job ended at its expiry")
    final = job()
    assert final["counts"] == {"pending": 0, "sent": 0, "ok": 2, "failed": 0, "expired": 1}
    assert [r["device_id"] for r in cl.get(f"/api/bulk/jobs/{job_id}?status=expired").json()["results"]] == [offline]
    [done] = audit_rows(county.engine, "bulk_done")
    assert (done.user_name, done.target, done.detail) == ("op1", f"job {job_id}", "arm ok=2 failed=0 expired=1 of 3")
    everyone = sorted(county.devices["g0201-01"])
    assert [r["device_id"] for r in cl.get(f"/api/bulk/jobs/{job_id}?offset=2").json()["results"]] == everyone[2:]
    page = cl.get(f"/bulk/jobs/{job_id}?status=expired")
    assert page.status_code == 200 and offline in page.text and county.devices["g0201-01"][0] not in page.text


def test_the_audit_viewer_filters_and_its_csv_is_safe_for_excel(county: County) -> None:
    with county.engine.begin() as conn:
        audit(conn, "op1", "command", "62062101", '=HYPERLINK("http://x","点我")')
        audit(conn, "op1", "command", "62062102", "+1 and -2 @home 张三")
        audit(conn, "admin1", "revoke", "62062103", "-rm")
    cl = client(county)
    login(cl, "op1")
    assert cl.get("/audit").status_code == 403 and cl.get("/audit.csv").status_code == 403  # admins only
    login(cl, "admin1")
    page = cl.get("/audit", params={"user": "op1", "action": "command"})
    assert page.status_code == 200 and "62062101" in page.text and "62062103" not in page.text
    resp = cl.get("/audit.csv", params={"user": "op1", "action": "command", "text": "张三"})
    assert resp.content.startswith(b"\xef\xbb\xbf") and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(resp.content.decode("utf-8-sig"))))
    assert rows[0][3:] == ["user", "action", "target", "detail"]
    assert [r[3:] for r in rows[1:]] == [["op1", "command", "62062102", "'+1 and -2 @home 张三"]]
    every = list(csv.reader(io.StringIO(cl.get("/audit.csv", params={"target": "620621"}).content.decode("utf-8-sig"))))
    details = [r[6] for r in every[1:]]
    assert details == ['\'=HYPERLINK("http://x","点我")', "'+1 and -2 @home 张三", "'-rm"]
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in every[1:] for cell in r[3:])
    # Time filters: today's rows, nothing before 2020, nothing after tomorrow.
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    assert len(list(csv.reader(io.StringIO(cl.get("/audit.csv", params={"until": "2020-01-01"}).text)))) == 1
    n_today = len(list(csv.reader(io.StringIO(cl.get("/audit.csv", params={"since": today}).text))))
    assert n_today > 4


def test_a_case_export_is_a_zip_whose_hashes_check_out(county: County, tmp_path: Path) -> None:
    dev = county.devices["g0101-01"][0]
    event_id = (1 << 32) + 1
    mp4 = b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40
    f = files_of(tmp_path, dev, event_id)
    f.final.parent.mkdir(parents=True)
    f.final.write_bytes(mp4)
    with county.engine.begin() as conn:
        conn.execute(
            clips.insert().values(
                device_id=dev,
                event_id=event_id,
                bytes=len(mp4),
                sha256=hashlib.sha256(mp4).hexdigest(),
                start_ms=now_ms() - 4000,
                end_ms=now_ms(),
                received_ms=now_ms(),
            )
        )
        row_id = conn.execute(
            select(events.c.id).where(events.c.device_id == dev, events.c.event_id == event_id, events.c.phase == "end")
        ).scalar_one()
    cl = client(county, AckingPublisher(county, set()), tmp_path)
    login(cl, "viewer1")
    assert cl.get(f"/events/{row_id}/case.zip").status_code == 403  # viewers see, operators export
    login(cl, "op1")
    assert cl.get("/events/999999/case.zip").status_code == 404
    resp = cl.get(f"/events/{row_id}/case.zip")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/zip"
    z = zipfile.ZipFile(io.BytesIO(resp.content))
    names = z.namelist()
    assert names[0] == "event.json" and names[-2:] == ["manifest.json", "SHA256SUMS"]
    assert f"clip/{event_id}.mp4" in names and any(n.startswith("snapshots/start-") for n in names)
    pairs = [line.split("  ", 1) for line in z.read("SHA256SUMS").decode().splitlines()]
    sums = {name: digest for digest, name in pairs}
    assert set(sums) == set(names) - {"SHA256SUMS"}
    for name, digest in sums.items():  # recomputed from the zip's own bytes
        assert hashlib.sha256(z.read(name)).hexdigest() == digest, name
    manifest = json.loads(z.read("manifest.json"))
    assert {f["name"]: f["sha256"] for f in manifest["files"]} == {n: sums[n] for n in names[:-2]}
    assert z.read(f"clip/{event_id}.mp4") == mp4
    assert manifest["exported_by"] == "op1" and manifest["event"]["phases"] == ["start", "end"]
    assert manifest["place"]["village"] == "和平村" and manifest["place"]["household_id"].startswith("HH01")
    assert [r["phase"] for r in json.loads(z.read("event.json"))] == ["start", "end"]
    [row] = audit_rows(county.engine, "case_export")
    manifest_sha = hashlib.sha256(z.read("manifest.json")).hexdigest()
    assert (row.user_name, row.target) == ("op1", dev)
    assert row.detail.endswith(f"manifest sha256={manifest_sha}") and str(event_id) in row.detail


def test_a_job_nobody_watches_still_ends_with_its_audit_row(county: County) -> None:
    """The console's periodic pass (ConsoleServer runs it) ends jobs whose page is never opened."""
    from hub.bulk import service
    from hub.bulk.select import Selection
    from hub.console.bulk import settle_waiting

    job = service.create_job(county.engine, "snapshot", Selection(group="g0101-02"), "op1", expiry_s=1)
    assert settle_waiting(county.engine) == 0  # nothing sent yet, before the expiry
    wait_for(lambda: settle_waiting(county.engine) == 1, 5, "the job ended by the periodic pass")
    [done] = audit_rows(county.engine, "bulk_done")
    assert (done.user_name, done.target) == ("op1", f"job {job.id}")
    assert done.detail == "snapshot ok=0 failed=3 expired=0 of 3"  # never sent: failed, not expired
    assert settle_waiting(county.engine) == 0

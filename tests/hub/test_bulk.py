"""Bulk jobs without a broker, on SQLite and PostgreSQL: who a selection picks, and how a job's
results move (sent → acked ok / failed with the device's reason / expired) and end (frozen, once)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, select

from hub.bulk import service
from hub.bulk.select import Selection, select_devices
from hub.bulk.tables import bulk_jobs, bulk_results
from hub.commands import record_result
from hub.db import make_engine
from hub.db.schema_ops import commands
from protocol.messages import Ack
from tests.support.console import County, now_ms, seed_county


@pytest.fixture
def county(db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(db_url)
    c = seed_county(engine)
    yield c
    engine.dispose()


class FakeSend:
    """Records each command as hub.commands.send_command does (a commands row), without MQTT."""

    def __init__(self, engine: Engine, refuse: set[str] | None = None) -> None:
        self.engine, self.refuse, self.sent = engine, refuse or set(), []  # type: ignore[var-annotated]
        self.expiries: list[int | None] = []

    def __call__(self, device_id: str, op: str, args: dict[str, Any] | None, expires_ms: int | None = None) -> str:
        if device_id in self.refuse:
            raise RuntimeError("publish failed (rc=4)")
        cid = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(commands.insert().values(id=cid, device_id=device_id, op=op, args=args, sent_ms=now_ms()))
        self.sent.append((device_id, op, cid))
        self.expiries.append(expires_ms)
        return cid


def ack(engine: Engine, dev: str, cid: str, ok: bool = True, error: str | None = None) -> None:
    with engine.begin() as conn:
        record_result(conn, dev, Ack(of="cmd", ref_id=cid, ok=ok, error=error, time_ms=now_ms()), now_ms())


def ids(county: County, sel: Selection) -> list[str]:
    with county.engine.connect() as conn:
        return [d["id"] for d in select_devices(conn, sel)]


def test_selection_by_each_criterion(county: County) -> None:
    d = county.devices
    every = sorted(x for g in d.values() for x in g)
    with county.engine.connect() as conn:
        from hub.db.schema import villages

        village = {n: i for i, n in conn.execute(select(villages.c.id, villages.c.name)).all()}
    assert ids(county, Selection(township="01")) == sorted(d["g0101-01"] + d["g0101-02"])
    assert ids(county, Selection(township="02")) == sorted(d["g0201-01"])
    assert ids(county, Selection(village=village["红光村"])) == sorted(d["g0101-02"])
    assert ids(county, Selection(group="g0201-01")) == sorted(d["g0201-01"])
    assert ids(county, Selection(health="offline")) == [d["g0201-01"][2]]
    assert ids(county, Selection(health="online")) == sorted(set(every) - {d["g0201-01"][2]})
    assert ids(county, Selection(health="camera_error")) == [d["g0101-01"][2]]
    assert d["g0101-01"][2] in ids(county, Selection(health="alarm"))
    county.health(d["g0101-02"][1], agent_version="0.2.0")
    assert ids(county, Selection(version="0.2.0")) == [d["g0101-02"][1]]
    assert len(ids(county, Selection(version="0.1.0"))) == 8
    # Criteria combine (AND), and a revoked device is never selected.
    assert ids(county, Selection(township="01", health="camera_error")) == [d["g0101-01"][2]]
    from hub.registry import Registry

    Registry(county.engine).revoke_device(d["g0201-01"][0], "test")
    assert d["g0201-01"][0] not in ids(county, Selection(township="02"))
    assert Selection.parse({"village": "x1", "health": "bogus", "township": "01"}) == Selection(township="01")


def test_a_job_needs_a_criterion_and_a_match(county: County) -> None:
    with pytest.raises(service.BulkError, match="at least one criterion"):
        service.create_job(county.engine, "arm", Selection(), "op1", expiry_s=60)
    with pytest.raises(service.BulkError, match="no active device"):
        service.create_job(county.engine, "arm", Selection(group="nope"), "op1", expiry_s=60)
    with pytest.raises(service.BulkError, match="unknown bulk action"):
        service.create_job(county.engine, "reboot", Selection(group="g0101-01"), "op1", expiry_s=60)
    with pytest.raises(service.BulkError, match="vision"):
        service.create_job(county.engine, "config", Selection(group="g0101-01"), "a", expiry_s=60, args={"vision": 3})
    with county.engine.connect() as conn:
        assert conn.execute(select(bulk_jobs)).first() is None


def test_progress_acks_failures_expiry_and_one_settle(county: County) -> None:
    engine = county.engine
    refused = sorted(county.devices["g0201-01"])[0]  # its publish fails: a result of its own, not the job's end
    send = FakeSend(engine, refuse={refused})
    job = service.create_job(engine, "arm", Selection(group="g0101-01"), "op1", expiry_s=3)
    job2 = service.create_job(engine, "disarm", Selection(township="02"), "op1", expiry_s=3)
    with engine.connect() as conn:
        assert service.progress(conn, job, now_ms())["pending"] == 3
    service.run_job(engine, job.id, send)
    service.run_job(engine, job2.id, send)
    by_dev = {dev: cid for dev, _op, cid in send.sent}
    # Each command carries its job's expiry, so a device back late refuses a stale arm.
    assert set(send.expiries) == {job.expires_ms, job2.expires_ms}
    g1 = sorted(county.devices["g0101-01"])
    ack(engine, g1[0], by_dev[g1[0]])
    ack(engine, g1[1], by_dev[g1[1]], ok=False, error="camera busy")
    with engine.connect() as conn:
        counts = service.progress(conn, job, now_ms())
        assert counts == {"pending": 0, "sent": 1, "ok": 1, "failed": 1, "expired": 0}
        failed = service.results(conn, job, now_ms(), status="failed")
        assert [(r["device_id"], r["reason"]) for r in failed] == [(g1[1], "camera busy")]
        c2 = service.progress(conn, job2, now_ms())
        assert c2["failed"] == 1 and c2["sent"] == 2
        assert service.results(conn, job2, now_ms(), status="failed")[0]["reason"] == "publish failed (rc=4)"
    assert not service.settle(engine, job.id)  # one still sent, before the expiry: not over
    done: list[dict[str, int]] = []
    later = job.expires_ms + 1
    assert service.settle(engine, job.id, later, on_done=lambda _c, _j, n: done.append(n))
    assert not service.settle(engine, job.id, later + 1, on_done=lambda _c, _j, n: done.append(n))  # only once
    assert done == [{"pending": 0, "sent": 0, "ok": 1, "failed": 1, "expired": 1}]
    # The late device answers after the expiry: the job's record stays as it was when it ended.
    ack(engine, g1[2], by_dev[g1[2]])
    with engine.connect() as conn:
        frozen = {
            r.device_id: r.status for r in conn.execute(select(bulk_results).where(bulk_results.c.job_id == job.id))
        }
        final = service.get_job(engine, job.id)
        assert final is not None and final.counts == done[0]
        assert frozen == {g1[0]: "ok", g1[1]: "failed", g1[2]: "expired"}
        assert [r["device_id"] for r in service.results(conn, final, now_ms(), status="expired")] == [g1[2]]


def test_a_job_whose_sending_never_ran_fails_its_devices_at_the_expiry(county: County) -> None:
    engine = county.engine
    job = service.create_job(engine, "snapshot", Selection(group="g0101-02"), "op1", expiry_s=1)
    assert not service.settle(engine, job.id, job.created_ms + 10)
    assert service.settle(engine, job.id, job.expires_ms)
    with engine.connect() as conn:
        rows = service.results(conn, service.get_job(engine, job.id), now_ms())  # type: ignore[arg-type]
    assert {(r["status"], r["reason"]) for r in rows} == {("failed", "not sent before the expiry")}


def test_no_channel_fails_each_device_and_ends_the_job(county: County) -> None:
    engine = county.engine
    job = service.create_job(engine, "arm", Selection(group="g0101-02"), "op1", expiry_s=600)
    service.run_job(engine, job.id, None)
    assert service.settle(engine, job.id)  # every result final: over before the expiry
    final = service.get_job(engine, job.id)
    assert final is not None and final.counts is not None and final.counts["failed"] == 3


def test_a_config_template_from_a_devices_history_goes_to_the_selection(county: County) -> None:
    from hub.configs.service import ConfigPushes

    engine = county.engine
    src = county.devices["g0101-01"][0]
    doc = {"zones": [{"name": "gate", "polygon": [[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]]}]}
    send = FakeSend(engine)
    first = ConfigPushes(engine, send).push(src, doc, "admin1")
    with engine.connect() as conn:
        template = service.template_doc(conn, src, first.rev)
    assert template == doc
    job = service.create_job(
        engine, "config", Selection(group="g0101-02"), "admin1", expiry_s=60, args={"vision": template, "template": "t"}
    )
    service.run_job(engine, job.id, send)
    targets = sorted(county.devices["g0101-02"])
    assert sorted(d for d, op, _ in send.sent if op == "config") == sorted([src, *targets])
    for dev in targets:
        assert ConfigPushes(engine, send).history(dev)[0]["template"] == "t"
    with engine.connect() as conn:
        assert service.progress(conn, job, now_ms())["sent"] == 3


def test_set_maintenance_writes_one_window_per_selected_device(county: County) -> None:
    from hub.maintenance.service import in_maintenance

    engine = county.engine
    start, end = now_ms() - 1000, now_ms() + 3_600_000
    args = {"from_ms": start, "until_ms": end, "reason": "林带施工"}
    with pytest.raises(service.BulkError, match="end after it starts"):
        service.create_job(
            engine, "maintenance", Selection(group="g0101-02"), "op1", expiry_s=60, args={**args, "until_ms": start}
        )
    with pytest.raises(service.BulkError, match="at most"):
        too_long = {**args, "until_ms": start + 400 * 86_400_000}
        service.create_job(engine, "maintenance", Selection(group="g0101-02"), "op1", expiry_s=60, args=too_long)
    job = service.create_job(engine, "maintenance", Selection(group="g0101-02"), "op1", expiry_s=60, args=args)
    service.run_job(engine, job.id, None)  # no MQTT channel needed: nothing is sent to the devices
    assert service.settle(engine, job.id)
    final = service.get_job(engine, job.id)
    assert final is not None and final.counts is not None and final.counts["ok"] == 3
    with engine.connect() as conn:
        for dev in county.devices["g0101-02"]:
            window = in_maintenance(conn, dev, now_ms())
            assert window is not None and (window.reason, window.created_by, window.until_ms) == (
                "林带施工",
                "op1",
                end,
            )
        assert in_maintenance(conn, county.devices["g0101-01"][0], now_ms()) is None

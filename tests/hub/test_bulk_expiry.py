"""A job's sending stops at its expiry: the devices not reached by then stay unsent
("not sent before the expiry"), as the job's record already says once it is settled.
It went on sending, so a job settled as "not sent" to a device had in fact sent it
(its result overwritten to "sent" afterwards), and a device with an unsynced clock,
which cannot tell the command expired, acted on it (attack review)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from hub.bulk import service
from hub.bulk.select import Selection
from hub.db import make_engine
from hub.db.schema_ops import commands
from tests.support.console import County, now_ms, seed_county


@pytest.fixture
def county(db_url: str) -> Iterator[County]:
    engine = make_engine(db_url)
    yield seed_county(engine)
    engine.dispose()


def test_sending_stops_at_the_expiry(county: County, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = county.engine
    job = service.create_job(engine, "disarm", Selection(group="g0101-02"), "op1", expiry_s=60)
    clock = [job.created_ms]
    monkeypatch.setattr(service, "_now", lambda: clock[0])
    sent: list[str] = []

    def slow_send(device_id: str, op: str, args: dict[str, Any] | None, expires_ms: int | None = None) -> str:
        cid = uuid.uuid4().hex
        with engine.begin() as conn:
            conn.execute(commands.insert().values(id=cid, device_id=device_id, op=op, args=args, sent_ms=now_ms()))
        sent.append(device_id)
        clock[0] = job.expires_ms + 1  # the broker was slow: the first publish took the whole expiry
        return cid

    service.run_job(engine, job.id, slow_send)
    assert len(sent) == 1 and job.total == 3
    assert service.settle(engine, job.id, clock[0])
    with engine.connect() as conn:
        rows = service.results(conn, service.get_job(engine, job.id), clock[0])  # type: ignore[arg-type]
    unsent = [r for r in rows if r["device_id"] not in sent]
    assert len(unsent) == 2
    assert {(r["status"], r["reason"]) for r in unsent} == {("failed", "not sent before the expiry")}

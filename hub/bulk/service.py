"""Bulk jobs: one row per action on a selection, one result row per device (issue 21).

- ``create_job`` writes the job and a ``pending`` result for every selected
  device in one transaction, so the job's size is fixed when the operator
  clicks, whatever comes online later.
- ``run_job`` sends, device by device (the console runs it in a thread): a
  command through ``send`` (``MqttPublisher.send`` → ``hub.commands.send_command``),
  a config through ``ConfigPushes``, a maintenance window through
  ``hub.maintenance``. A failure to send is that device's result, never the job's end;
  the expiry is: what is not sent by then stays unsent ("not sent before the expiry").
- While a job runs, a ``sent`` result takes its answer from the device's ack in
  ``commands`` (``record_result``) by a join; past ``expires_ms`` an unanswered
  one counts as ``expired``.
- ``settle`` ends a job once nothing can change (every result final, or the
  expiry passed): it freezes each result here and sets ``finished_ms`` with one
  conditional UPDATE, so exactly one caller sees ``True`` and writes the "done"
  audit row (the console's audit table sits above this room: it passes ``on_done``).

Offline devices: a command is published at QoS 1 and the broker keeps it in the
device's persistent session until it reconnects (``docs``: hub/README.md,
"Bulk operations"). Each command carries the job's expiry (``x``): a device back
after it, its clock synced, answers ``expired`` and does not act; the job has
already called it ``expired`` and keeps it so. A device whose clock is not
synced cannot tell, and acts (the late ack shows on the device's page).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, case, func, literal, select, update

from hub.bulk.select import Selection, select_devices
from hub.bulk.tables import ACTIONS, FINAL, bulk_jobs, bulk_results
from hub.db.schema_ops import commands

log = logging.getLogger(__name__)

Send = Callable[[str, str, dict[str, Any] | None], str]  # what ConfigPushes takes


class ExpiringSend(Protocol):
    """``MqttPublisher.send``: a command with the job's expiry (``x``), so a device back late refuses it."""

    def __call__(self, device_id: str, op: str, args: dict[str, Any] | None, expires_ms: int | None = None) -> str: ...


OnDone = Callable[[Connection, "Job", dict[str, int]], None]

COMMAND_ARGS: dict[str, dict[str, Any] | None] = {"arm": None, "disarm": None, "snapshot": None}
MIN_EXPIRY_S, MAX_EXPIRY_S = 1, 7 * 86400
MAX_DEVICES = 5000  # more than the county has: a typo'd selection never becomes an unbounded job


class BulkError(ValueError):
    """The operator's request is wrong (nothing selected, a bad document, …): nothing is written."""


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    action: str
    selection: dict[str, Any]
    args: dict[str, Any] | None
    created_ms: int
    created_by: str
    expires_ms: int
    total: int
    finished_ms: int | None
    counts: dict[str, int] | None


def _now() -> int:
    return int(time.time() * 1000)


def _check_args(action: str, args: dict[str, Any] | None) -> dict[str, Any] | None:
    if action in COMMAND_ARGS:
        return None
    if action == "config":
        from hub.configs.service import check_vision_doc, command_size
        from protocol import limits

        vision = (args or {}).get("vision")
        check_vision_doc(vision)  # raises ValueError naming the bad key
        assert isinstance(vision, dict)
        if command_size(vision) > limits.MAX_COMMAND_BYTES:
            raise BulkError("vision: the config command would exceed the command size limit")
        template = (args or {}).get("template")
        return {"vision": vision, "template": str(template)[:64] if template else None}
    if action == "maintenance":
        a = args or {}
        from_ms, until_ms = a.get("from_ms"), a.get("until_ms")
        if not isinstance(from_ms, int) or not isinstance(until_ms, int) or until_ms <= from_ms:
            raise BulkError("maintenance: the window must end after it starts")
        from hub.maintenance.service import MAX_WINDOW_MS

        if until_ms - from_ms > MAX_WINDOW_MS:  # refused here, not 3,000 times by add_window
            raise BulkError(f"maintenance: a window lasts at most {MAX_WINDOW_MS // 86_400_000} days")
        return {"from_ms": from_ms, "until_ms": until_ms, "reason": str(a.get("reason") or "")[:200]}
    raise BulkError(f"unknown bulk action {action!r}")


def create_job(
    engine: Engine,
    action: str,
    sel: Selection,
    user: str,
    *,
    expiry_s: int,
    args: dict[str, Any] | None = None,
    now_ms: int | None = None,
) -> Job:
    if action not in ACTIONS:
        raise BulkError(f"unknown bulk action {action!r}")
    if sel.empty():
        raise BulkError("choose at least one criterion: a bulk action never reaches the whole county by default")
    if not MIN_EXPIRY_S <= expiry_s <= MAX_EXPIRY_S:
        raise BulkError(f"expiry must be {MIN_EXPIRY_S}..{MAX_EXPIRY_S} s")
    try:
        checked = _check_args(action, args)
    except ValueError as exc:
        raise BulkError(str(exc)) from exc
    now = _now() if now_ms is None else now_ms
    with engine.begin() as conn:
        targets = [d["id"] for d in select_devices(conn, sel)]
        if not targets:
            raise BulkError("no active device matches the selection")
        if len(targets) > MAX_DEVICES:
            raise BulkError(f"{len(targets)} devices: more than {MAX_DEVICES} in one job")
        job_id = conn.execute(
            bulk_jobs.insert()
            .values(
                action=action,
                selection=sel.to_json(),
                args=checked,
                created_ms=now,
                created_by=user[:32],
                expires_ms=now + expiry_s * 1000,
                total=len(targets),
            )
            .returning(bulk_jobs.c.id)
        ).scalar_one()
        conn.execute(bulk_results.insert(), [{"job_id": job_id, "device_id": d, "status": "pending"} for d in targets])
        return _job(conn, int(job_id))  # type: ignore[return-value]


def _job(conn: Connection, job_id: int) -> Job | None:
    r = conn.execute(select(bulk_jobs).where(bulk_jobs.c.id == job_id)).mappings().first()
    return None if r is None else Job(**dict(r))


def get_job(engine: Engine, job_id: int) -> Job | None:
    with engine.connect() as conn:
        return _job(conn, job_id)


def list_jobs(conn: Connection, limit: int = 50) -> list[Job]:
    rows = conn.execute(select(bulk_jobs).order_by(bulk_jobs.c.id.desc()).limit(limit)).mappings()
    return [Job(**dict(r)) for r in rows]


def _mark(engine: Engine, job_id: int, device_id: str, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(bulk_results)
            .where(bulk_results.c.job_id == job_id, bulk_results.c.device_id == device_id)
            .values(**values)
        )


def run_job(engine: Engine, job_id: int, send: ExpiringSend | None) -> None:
    """Send the job to every device still ``pending`` (all of them, unless a run was cut short)."""
    job = get_job(engine, job_id)
    if job is None or job.finished_ms is not None:
        return
    with engine.connect() as conn:
        pending = list(
            conn.execute(
                select(bulk_results.c.device_id)
                .where(bulk_results.c.job_id == job_id, bulk_results.c.status == "pending")
                .order_by(bulk_results.c.device_id)
            ).scalars()
        )
    for device_id in pending:
        if _now() >= job.expires_ms:
            # The rest stay pending ("not sent before the expiry"): a command sent now would be
            # acted on by a device that cannot tell it expired, after the job said it was not sent.
            log.warning(
                "bulk job %d: expired with %d device(s) not sent", job_id, len(pending) - pending.index(device_id)
            )
            return
        try:
            _one(engine, job, device_id, send)
        except Exception as exc:  # one device's failure is its result; the rest still get the action
            log.warning("bulk job %d: %s failed: %s", job_id, device_id, exc)
            _mark(engine, job_id, device_id, status="failed", reason=(str(exc) or type(exc).__name__)[:200])


def _one(engine: Engine, job: Job, device_id: str, send: ExpiringSend | None) -> None:
    now = _now()
    if job.action == "maintenance":
        from hub.maintenance.service import add_window

        a = job.args or {}
        reason = a.get("reason") or f"bulk job {job.id}"
        add_window(engine, "device", device_id, a["from_ms"], a["until_ms"], reason, job.created_by)
        _mark(engine, job.id, device_id, status="ok", sent_ms=now, done_ms=now)
        return
    if send is None:
        _mark(engine, job.id, device_id, status="failed", reason="no MQTT channel to the devices", done_ms=now)
        return
    if job.action == "config":
        from hub.configs.service import ConfigPushes

        a = job.args or {}
        res = ConfigPushes(engine, send).push(device_id, a["vision"], job.created_by, a.get("template"))
        if res.error is not None or res.command_id is None:
            _mark(engine, job.id, device_id, status="failed", reason=(res.error or "not sent")[:200], done_ms=now)
        else:
            _mark(engine, job.id, device_id, status="sent", command_id=res.command_id, sent_ms=now)
        return
    command_id = send(device_id, job.action, COMMAND_ARGS[job.action], expires_ms=job.expires_ms)
    _mark(engine, job.id, device_id, status="sent", command_id=command_id, sent_ms=now)


def _live(expired: bool) -> Any:
    """A result's status now: frozen ones as stored, sent ones from the device's ack, else the expiry."""
    r, c = bulk_results.c, commands.c
    return case(
        (r.status.in_(FINAL), r.status),
        (r.status == "pending", literal("failed") if expired else literal("pending")),
        (c.ack_ms.is_not(None) & c.ok.is_(True), literal("ok")),
        (c.ack_ms.is_not(None), literal("failed")),
        else_=literal("expired") if expired else literal("sent"),
    )


def _joined() -> Any:
    return bulk_results.outerjoin(commands, commands.c.id == bulk_results.c.command_id)


def progress(conn: Connection, job: Job, now_ms: int) -> dict[str, int]:
    """How many results are in each status (every status present, zeros included)."""
    expired = now_ms >= job.expires_ms
    live = _live(expired).label("st")
    rows = conn.execute(
        select(live, func.count()).select_from(_joined()).where(bulk_results.c.job_id == job.id).group_by(live)
    ).all()
    out = {s: 0 for s in ("pending", "sent", "ok", "failed", "expired")}
    for status, n in rows:
        out[str(status)] = int(n)
    return out


def results(
    conn: Connection, job: Job, now_ms: int, *, status: str = "", limit: int = 200, offset: int = 0
) -> list[dict[str, Any]]:
    """Per-device results, by device id, optionally only one status."""
    expired = now_ms >= job.expires_ms
    live = _live(expired)
    reason = case(
        (bulk_results.c.status == "pending", literal("not sent before the expiry") if expired else None),
        else_=func.coalesce(bulk_results.c.reason, commands.c.error),
    )
    query = (
        select(
            bulk_results.c.device_id,
            live.label("status"),
            reason.label("reason"),
            bulk_results.c.command_id,
            bulk_results.c.sent_ms,
            func.coalesce(bulk_results.c.done_ms, commands.c.ack_ms).label("done_ms"),
        )
        .select_from(_joined())
        .where(bulk_results.c.job_id == job.id)
        .order_by(bulk_results.c.device_id)
        .limit(max(1, min(limit, MAX_DEVICES)))
        .offset(max(0, offset))
    )
    if status:
        query = query.where(live == status)
    return [dict(r) for r in conn.execute(query).mappings()]


def settle(engine: Engine, job_id: int, now_ms: int | None = None, on_done: OnDone | None = None) -> bool:
    """End the job if nothing can change any more; True for the one caller that ended it."""
    now = _now() if now_ms is None else now_ms
    with engine.begin() as conn:
        job = _job(conn, job_id)
        if job is None or job.finished_ms is not None:
            return False
        counts = progress(conn, job, now)
        if counts["pending"] or (counts["sent"] and now < job.expires_ms):
            return False
        claimed = conn.execute(
            update(bulk_jobs)
            .where(bulk_jobs.c.id == job_id, bulk_jobs.c.finished_ms.is_(None))
            .values(finished_ms=now, counts=counts)
        ).rowcount
        if not claimed:
            return False
        for row in results(conn, job, now, limit=MAX_DEVICES):
            if row["status"] in FINAL:
                conn.execute(
                    update(bulk_results)
                    .where(bulk_results.c.job_id == job_id, bulk_results.c.device_id == row["device_id"])
                    .values(status=row["status"], reason=row["reason"], done_ms=row["done_ms"] or now)
                )
        if on_done is not None:
            on_done(conn, job, counts)
    return True


def unfinished(conn: Connection) -> list[int]:
    return list(conn.execute(select(bulk_jobs.c.id).where(bulk_jobs.c.finished_ms.is_(None))).scalars())


def template_doc(conn: Connection, device_id: str, rev: int) -> dict[str, Any] | None:
    """The vision document of one push in a device's config history (a template for a bulk push)."""
    from hub.configs.tables import config_pushes

    c = config_pushes.c
    doc = conn.execute(select(c.doc).where(c.device_id == device_id, c.rev == rev)).scalar()
    return doc if isinstance(doc, dict) else None

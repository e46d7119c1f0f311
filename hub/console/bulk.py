"""Bulk operations in the console (issue 21): choose devices, preview them, run an action, watch it.

Roles: anyone logged in sees the page, the preview and every job's results
(viewers see the rest of the console too); operators may run arm, disarm,
snapshot and maintenance; a config push to a selection is admin-only, as the
zones editor's village push is (one click changes when whole villages are
alerted). The job and its results are hub.bulk's; this module checks who may,
audits the start, runs the sending in a thread (3,000 devices take longer than
a request should), and settles the job when a page asks, auditing its end.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy import Connection, Engine

from hub.bulk import service
from hub.bulk.select import HEALTH, Selection, choices, select_devices
from hub.bulk.tables import ACTIONS, STATUSES
from hub.console import auth, views
from hub.console.context import Forbidden, Operator, Viewer, ctx_of, translator
from hub.console.i18n import parse_local

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/bulk", tags=["bulk"])

EXPIRY_CHOICES = (600, 3600, 6 * 3600, 86400)
DEFAULT_EXPIRY_S = 3600
PREVIEW_ROWS = 200
ADMIN_ACTIONS = ("config",)


def _now() -> int:
    return int(time.time() * 1000)


def _render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    return request.app.state.renderer.page(request, name, context, status_code)  # type: ignore[no-any-return]


def _selection(params: Any) -> Selection:
    return Selection.parse({k: params.get(k) for k in ("township", "village", "group", "version", "health")})


def audit_done(conn: Connection, job: service.Job, counts: dict[str, int]) -> None:
    detail = " ".join(f"{k}={counts[k]}" for k in ("ok", "failed", "expired") if k in counts)
    auth.audit(conn, job.created_by, "bulk_done", f"job {job.id}", f"{job.action} {detail} of {job.total}")


def settle(engine: Engine, job_id: int) -> None:
    service.settle(engine, job_id, _now(), on_done=audit_done)


def settle_waiting(engine: Engine) -> int:
    """End every job that can end now (the console's periodic pass); how many ended."""
    with engine.connect() as conn:
        waiting = service.unfinished(conn)
    return sum(service.settle(engine, job_id, _now(), on_done=audit_done) for job_id in waiting)


def start(request: Request, user: auth.User, form: dict[str, Any]) -> tuple[service.Job | None, str]:
    """Create, audit and start a job from the form or JSON body; (job, error)."""
    ctx = ctx_of(request)
    action = str(form.get("action") or "")
    if action not in ACTIONS:
        return None, "unknown action"
    if action in ADMIN_ACTIONS and not user.can("admin"):
        raise Forbidden()
    expiry = views.as_int(str(form.get("expiry_s") or DEFAULT_EXPIRY_S)) or 0
    sel = _selection(form)
    try:
        args = _args(ctx.engine, action, form)
        job = service.create_job(ctx.engine, action, sel, user.name, expiry_s=expiry, args=args)
    except ValueError as exc:
        return None, str(exc)[:300]
    with ctx.engine.begin() as conn:
        auth.audit(
            conn, user.name, f"bulk_{action}", f"job {job.id}", f"{sel.describe()} n={job.total} expiry={expiry}s"
        )
    send = None if ctx.publisher is None else ctx.publisher.send
    threading.Thread(
        target=service.run_job, args=(ctx.engine, job.id, send), name=f"xl-bulk-{job.id}", daemon=True
    ).start()
    return job, ""


def _args(engine: Engine, action: str, form: dict[str, Any]) -> dict[str, Any] | None:
    if action == "config":
        source, template = str(form.get("source_device") or ""), str(form.get("template") or "")[:64]
        if source:
            rev = views.as_int(str(form.get("source_rev") or ""))
            if not views.DEVICE_RE.match(source) or rev is None:
                raise ValueError("template: a device id and a revision from its config history")
            with engine.connect() as conn:
                doc = service.template_doc(conn, source, rev)
            if doc is None:
                raise ValueError(f"device {source} has no config rev {rev}")
            return {"vision": doc, "template": template or f"{source} rev {rev}"}
        raw = form.get("vision")
        try:
            doc = json.loads(raw) if isinstance(raw, str) else raw
        except json.JSONDecodeError as exc:
            raise ValueError(f"vision: not JSON ({exc.msg})") from exc
        return {"vision": doc, "template": template or None}
    if action == "maintenance":
        from_ms = form.get("from_ms") or parse_local(str(form.get("from") or ""))
        until_ms = form.get("until_ms") or parse_local(str(form.get("until") or ""))
        return {"from_ms": from_ms, "until_ms": until_ms, "reason": str(form.get("reason") or "")[:200]}
    return None


def _job_json(engine: Engine, job: service.Job, status: str, offset: int) -> dict[str, Any]:
    now = _now()
    with engine.connect() as conn:
        counts = job.counts if job.finished_ms is not None and job.counts else service.progress(conn, job, now)
        rows = service.results(conn, job, now, status=status, limit=views.PAGE_SIZE, offset=offset)
    return {
        "id": job.id,
        "action": job.action,
        "selection": job.selection,
        "created_ms": job.created_ms,
        "created_by": job.created_by,
        "expires_ms": job.expires_ms,
        "total": job.total,
        "finished_ms": job.finished_ms,
        "done": job.finished_ms is not None,
        "counts": counts,
        "results": rows,
    }


def _loaded(request: Request, job_id: int) -> service.Job | None:
    engine = ctx_of(request).engine
    settle(engine, job_id)
    return service.get_job(engine, job_id)


# -- pages ---------------------------------------------------------------------------


@router.get("/bulk")
def bulk_page(request: Request, user: Viewer) -> Response:
    ctx = ctx_of(request)
    sel = _selection(request.query_params)
    settle_waiting(ctx.engine)  # each in its own transaction, before this page's read
    with ctx.engine.connect() as conn:
        picked = [] if sel.empty() else select_devices(conn, sel)
        data = {"choices": choices(conn), "jobs": service.list_jobs(conn)}
    return _render(
        request,
        "bulk.html",
        {
            "nav": "bulk",
            **data,
            "sel": sel,
            "health_states": HEALTH,
            "picked": picked[:PREVIEW_ROWS],
            "n_picked": len(picked),
            "actions": ACTIONS,
            "admin_actions": ADMIN_ACTIONS,
            "expiries": EXPIRY_CHOICES,
            "default_expiry": DEFAULT_EXPIRY_S,
            "can_run": user.can("operator"),
            "has_publisher": ctx.publisher is not None,
            "error": request.query_params.get("err", "")[:300],
        },
    )


@router.post("/bulk/jobs")
async def run_from_form(request: Request, user: Operator) -> Response:
    form = dict((await request.form()).items())
    job, error = start(request, user, form)
    if job is None:
        sel = _selection(form).to_json()
        from urllib.parse import urlencode

        return RedirectResponse("/bulk?" + urlencode({**sel, "err": error}), status_code=303)
    return RedirectResponse(f"/bulk/jobs/{job.id}", status_code=303)


@router.get("/bulk/jobs/{job_id}")
def job_page(request: Request, job_id: int, _u: Viewer) -> Response:
    job = _loaded(request, job_id)
    if job is None:
        return _render(request, "error.html", {"message": translator(request)("err.not_found")}, 404)
    status = request.query_params.get("status", "")
    status = status if status in STATUSES else ""
    offset = max(0, views.as_int(request.query_params.get("offset")) or 0)
    data = _job_json(ctx_of(request).engine, job, status, offset)
    shown = data["counts"][status] if status else data["total"]
    return _render(
        request,
        "bulk_job.html",
        {
            "nav": "bulk",
            "job": data,
            "status": status,
            "statuses": STATUSES,
            "offset": offset,
            "page_size": views.PAGE_SIZE,
            "shown": shown,
        },
    )


# -- JSON ------------------------------------------------------------------------------


@api.get("/preview")
def preview(request: Request, _u: Viewer) -> Response:
    sel = _selection(request.query_params)
    if sel.empty():
        return JSONResponse({"count": 0, "devices": [], "detail": "no criterion"})
    with ctx_of(request).engine.connect() as conn:
        picked = select_devices(conn, sel)
    return JSONResponse({"count": len(picked), "devices": picked[:PREVIEW_ROWS], "selection": sel.to_json()})


@api.post("/jobs")
async def run_from_json(request: Request, user: Operator) -> Response:
    try:
        body = await request.json()
    except ValueError:
        return JSONResponse({"detail": "body: JSON expected"}, status_code=400)
    if not isinstance(body, dict):
        return JSONResponse({"detail": "body: an object expected"}, status_code=400)
    job, error = start(request, user, body)
    if job is None:
        return JSONResponse({"detail": error}, status_code=400)
    return JSONResponse({"id": job.id, "total": job.total, "url": f"/bulk/jobs/{job.id}"}, status_code=201)


@api.get("/jobs/{job_id}")
def job_json(request: Request, job_id: int, _u: Viewer) -> Response:
    job = _loaded(request, job_id)
    if job is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    status = request.query_params.get("status", "")
    offset = max(0, views.as_int(request.query_params.get("offset")) or 0)
    return JSONResponse(_job_json(ctx_of(request).engine, job, status if status in STATUSES else "", offset))

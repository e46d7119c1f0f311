"""Maintenance windows and alarm snoozes in the console (issue 21).

The page lists windows (on, to come, and over within a week), adds one for a
device, a village or a 联防组 with from/until and a reason, and ends one
early. Viewers see it; operators set, end and snooze. Each change is one
request through the role check (and with it CSRF) and one audit row. The
rules themselves are in hub/maintenance: the console only calls them.

It also adds to the alarms view what these rooms know about each alarm: the
window keeping its device quiet, its snooze, and the recovery notices.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection, select

from hub.console import auth
from hub.console.context import Operator, Viewer, ctx_of, safe_next, translator
from hub.console.i18n import TZ, fmt_time, parse_local
from hub.db.schema import groups, villages
from hub.health.tables import alarm_notices
from hub.maintenance.service import SCOPES, Window, add_window, end_window, quiet_devices, recent_windows
from hub.maintenance.snooze import MAX_SNOOZE_HOURS, snooze_alarm, snoozed

router = APIRouter(include_in_schema=False)

SHOWN_PAST_MS = 7 * 86_400_000  # windows over for less than a week stay listed


def _now() -> int:
    return int(time.time() * 1000)


def _back(path: str, **params: object) -> RedirectResponse:
    return RedirectResponse(path + ("?" + urlencode(params) if params else ""), status_code=303)


# -- what the alarms view shows beside each alarm ---------------------------------------


def decorate_alarms(conn: Connection, rows: list[dict[str, Any]], now_ms: int) -> list[dict[str, Any]]:
    """Adds ``snooze_until``/``snooze_by`` and ``maint`` (the window keeping the
    device quiet now) to alarm rows; a snoozed alarm sorts with the acknowledged
    ones, and one whose snooze is over is back among the unacknowledged."""
    snoozes = snoozed(conn, [int(r["id"]) for r in rows], now_ms)
    quiet = quiet_devices(conn, now_ms, {str(r["device_id"]) for r in rows})
    for r in rows:
        until, by = snoozes.get(int(r["id"]), (None, None))
        r["snooze_until"], r["snooze_by"] = until, by
        r["maint"] = quiet.get(str(r["device_id"]))
    rows.sort(
        key=lambda r: (r["cleared_ms"] is not None, bool(r.get("ack_user") or r["snooze_until"]), -r["raised_ms"])
    )
    return rows


def recent_notices(conn: Connection, since_ms: int, limit: int = 100) -> list[dict[str, Any]]:
    query = (
        select(alarm_notices)
        .where(alarm_notices.c.at_ms >= since_ms)
        .order_by(alarm_notices.c.at_ms.desc(), alarm_notices.c.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


# -- the page ---------------------------------------------------------------------------------


def _state(w: Window, now_ms: int) -> str:
    if w.active_at(now_ms):
        return "on"
    return "later" if w.from_ms > now_ms and w.ended_ms is None else "over"


def _iso_local(ms: int) -> str:
    """For a datetime-local input: county time, to the minute."""
    return datetime.fromtimestamp(ms / 1000, TZ).strftime("%Y-%m-%dT%H:%M")


@router.get("/maintenance")
def maintenance_page(request: Request, user: Viewer) -> Response:
    now = _now()
    with ctx_of(request).engine.connect() as conn:
        windows = recent_windows(conn, now - SHOWN_PAST_MS)
        village_rows = conn.execute(select(villages.c.id, villages.c.name).order_by(villages.c.id)).all()
        group_rows = conn.execute(select(groups.c.id, groups.c.name).order_by(groups.c.id)).all()
        covered = quiet_devices(conn, now)
    per_window: dict[int, int] = {}
    for w in covered.values():
        per_window[w.id] = per_window.get(w.id, 0) + 1
    t = translator(request)
    q = request.query_params
    notice = {"added": t("mt.added"), "ended": t("mt.ended_ok"), "not_ended": t("mt.not_ended")}.get(
        q.get("notice", ""), q.get("err", "")[:200] if q.get("notice") == "error" else ""
    )
    page: HTMLResponse = request.app.state.renderer.page(
        request,
        "maintenance.html",
        {
            "nav": "maintenance",
            "windows": [{"w": w, "state": _state(w, now), "covered": per_window.get(w.id, 0)} for w in windows],
            "scopes": SCOPES,
            "villages": village_rows,
            "groups": group_rows,
            "default_from": _iso_local(now),
            "default_until": _iso_local(now + 4 * 3_600_000),
            "preset": {"scope": q.get("scope", "device"), "target": q.get("target", "")[:64]},
            "notice": notice,
        },
    )
    return page


@router.post("/maintenance")
def add(
    request: Request,
    user: Operator,
    scope: str = Form(""),
    target: str = Form(""),
    from_: str = Form("", alias="from"),
    until: str = Form(""),
    reason: str = Form(""),
) -> Response:
    from_ms, until_ms = parse_local(from_), parse_local(until)
    if from_ms is None:
        return _back("/maintenance", notice="error", err="from: a date and time")
    if until_ms is None:
        return _back("/maintenance", notice="error", err="until: a date and time")
    ctx = ctx_of(request)
    try:
        w = add_window(ctx.engine, scope, target, from_ms, until_ms, reason, user.name)
    except ValueError as exc:
        return _back("/maintenance", notice="error", err=str(exc))
    with ctx.engine.begin() as conn:
        detail = f"#{w.id} {fmt_time(w.from_ms)} – {fmt_time(w.until_ms)}: {w.reason}"
        auth.audit(conn, user.name, "maintenance_add", f"{w.scope}:{w.target}", detail)
    return _back("/maintenance", notice="added")


@router.post("/maintenance/{window_id}/end")
def end(request: Request, window_id: int, user: Operator) -> Response:
    ctx = ctx_of(request)
    if not end_window(ctx.engine, window_id, user.name, _now()):
        return _back("/maintenance", notice="not_ended")
    with ctx.engine.begin() as conn:
        auth.audit(conn, user.name, "maintenance_end", str(window_id), None)
    return _back("/maintenance", notice="ended")


@router.post("/alarms/{alarm_id}/snooze")
def snooze(
    request: Request, alarm_id: int, user: Operator, hours: float = Form(0.0), back: str = Form("/alerts")
) -> Response:
    here = safe_next(back).split("?")[0]
    ctx = ctx_of(request)
    if not 0 < hours <= MAX_SNOOZE_HOURS:
        return Response(status_code=400)
    with ctx.engine.begin() as conn:
        until = snooze_alarm(conn, alarm_id, hours, user.name, _now())
        if until is not None:
            auth.audit(conn, user.name, "alarm_snooze", str(alarm_id), f"{hours:g} h, until {fmt_time(until)}")
    return _back(here, notice="snoozed") if until is not None else _back(here)

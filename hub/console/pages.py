"""HTML pages (GET) and the login flow."""

from __future__ import annotations

import hmac
import time
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hub.console import auth, views
from hub.console.context import Viewer, ctx_of, new_login_token, safe_next, translator
from hub.console.i18n import LANG_COOKIE, LANGS
from hub.console.tables import ROLES

router = APIRouter(include_in_schema=False)
LOGIN_CSRF_COOKIE = "xl_login"


def _now() -> int:
    return int(time.time() * 1000)


def _render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    return request.app.state.renderer.page(request, name, context, status_code)  # type: ignore[no-any-return]


def _params(request: Request) -> dict[str, str]:
    return {k: v for k, v in request.query_params.items()}


def _not_found(request: Request) -> HTMLResponse:
    return _render(request, "error.html", {"message": translator(request)("err.not_found")}, 404)


# -- login -----------------------------------------------------------------------


def _login_page(request: Request, error: str = "", status_code: int = 200, next_: str | None = None) -> HTMLResponse:
    # Login CSRF (double submit): the form must echo a cookie only this site could set.
    token = new_login_token()
    resp = _render(
        request,
        "login.html",
        {"error": error, "login_token": token, "next": safe_next(next_ or request.query_params.get("next"))},
        status_code,
    )
    resp.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/login",
        secure=ctx_of(request).settings.secure_cookie,
    )
    return resp


@router.get("/login")
def login_form(request: Request) -> Response:
    return _login_page(request)


@router.post("/login")
def login_submit(
    request: Request, username: str = Form(""), password: str = Form(""), csrf: str = Form(""), next: str = Form("/")
) -> Response:
    ctx = ctx_of(request)
    t = translator(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf.encode()):
        return _login_page(request, t("err.csrf"), 403, next)
    ip = request.client.host if request.client else "?"
    try:
        token = auth.login(
            ctx.engine,
            username.strip()[:32],
            password[:200],
            ip,
            session_s=int(ctx.settings.session_hours * 3600),
            throttle=ctx.settings.throttle,
        )
    except auth.LoginLocked as exc:
        return _login_page(request, t("login.locked", n=exc.retry_after_s), 429, next)
    if token is None:
        return _login_page(request, t("login.bad"), 401, next)
    resp = RedirectResponse(safe_next(next), status_code=303)
    resp.set_cookie(
        auth.SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        path="/",
        secure=ctx.settings.secure_cookie,
        max_age=int(ctx.settings.session_hours * 3600),
    )
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@router.get("/lang")
def switch_language(request: Request, to: str = "zh", next: str = "/") -> Response:
    resp = RedirectResponse(safe_next(next), status_code=303)
    resp.set_cookie(LANG_COOKIE, to if to in LANGS else "zh", max_age=365 * 86400, samesite="lax", httponly=True)
    return resp


# -- pages -------------------------------------------------------------------------


@router.get("/")
def overview_page(request: Request, _u: Viewer) -> Response:
    with ctx_of(request).engine.connect() as conn:
        data = views.overview(conn, _now())
    return _render(request, "overview.html", {"nav": "overview", **data})


@router.get("/devices")
def devices_page(request: Request, _u: Viewer) -> Response:
    with ctx_of(request).engine.connect() as conn:
        data = views.devices(conn, _now(), _params(request))
    return _render(request, "devices.html", {"nav": "devices", **data})


@router.get("/devices/{device_id}")
def device_page(request: Request, device_id: str, _u: Viewer) -> Response:
    from hub.console.maintenance import decorate_alarms
    from hub.maintenance.service import in_maintenance

    with ctx_of(request).engine.connect() as conn:
        data = views.device(conn, device_id, _now())
        if data is not None:  # issue 21: the window keeping it quiet, its alarms' snoozes
            data["maint"] = in_maintenance(conn, device_id, _now())
            data["alarms"] = decorate_alarms(conn, data["alarms"], _now())
    if data is None:
        return _not_found(request)
    charts = _charts(data["history"], translator(request))
    return _render(
        request,
        "device.html",
        {
            "nav": "devices",
            **data,
            "charts": charts,
            "notice": _notice(request),
            "has_publisher": ctx_of(request).publisher is not None,
        },
    )


def _charts(history: list[dict[str, Any]], t: Any) -> list[tuple[str, Any, str]]:
    from hub.console.charts import sparkline

    end = _now()
    start = end - 24 * 3_600_000
    out = []
    for column, key, unit, warn in (
        ("temp_max", "col.temp", "°C", 80.0),
        ("load_max", "dev.load", "", None),
        ("mem_min_mb", "dev.mem", "", None),
        ("disk_min_mb", "dev.disk", "", None),
        ("outbox_max", "col.ob", "", None),
    ):
        points = [(int(h["bucket_ms"]), None if h[column] is None else float(h[column])) for h in history]
        last = next((v for _, v in reversed(points) if v is not None), None)
        svg = sparkline(points, start, end, label=t(key), unit=unit, warn=warn)
        out.append((t(key), svg, "—" if last is None else f"{last:g}{unit}"))
    return out


def _notice(request: Request) -> str:
    """Outcome of the last action, passed through the redirect as a whitelisted key."""
    t = translator(request)
    q = request.query_params
    key = q.get("notice", "")
    if key == "cmd_sent":
        return t("cmd.sent", op=t("cmd." + q.get("op", "")))
    if key == "cmd_failed":
        return t("cmd.failed", err=q.get("err", "")[:200])
    if key == "error":
        return q.get("err", "")[:200]
    if key == "clip_failed":
        return t("clip.failed", err=q.get("err", "")[:200])
    if key == "retried":
        return t("fw.retried", n=views.as_int(q.get("n")) or 0)
    fixed = {
        "no_channel": "cmd.no_channel",
        "revoked": "dev.revoked_ok",
        "acked": "al.acked_ok",
        "snoozed": "mt.snoozed_ok",
        "user_saved": "users.added",
        "clip_requested": "clip.requested_ok",
    }
    return t(fixed[key]) if key in fixed else ""


@router.get("/events")
def events_page(request: Request, _u: Viewer) -> Response:
    with ctx_of(request).engine.connect() as conn:
        data = views.events(conn, _params(request))
    return _render(request, "events.html", {"nav": "events", **data})


@router.get("/events/{row_id}")
def event_page(request: Request, row_id: int, user: Viewer) -> Response:
    from hub.console import clips, ops

    ctx = ctx_of(request)
    with ctx.engine.connect() as conn:
        data = ops.event_detail(conn, row_id)
    if data is None:
        return _not_found(request)
    clip = clips.for_event(ctx.clips, data["device_id"], int(data["event_id"]), int(data["time_ms"]))
    return _render(
        request,
        "event.html",
        {"nav": "events", "ev": data, "clip": clip, "can_fetch": user.can("operator"), "notice": _notice(request)},
    )


@router.get("/snapshots/{snap_id}.jpg")
def snapshot_image(request: Request, snap_id: int, _u: Viewer) -> Response:
    from hub.console import ops

    with ctx_of(request).engine.connect() as conn:
        jpeg = ops.snapshot_jpeg(conn, snap_id)
    if jpeg is None:
        return Response(status_code=404)
    # Pictures of people's yards: private to this browser, never in a shared cache.
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/alerts")
def alerts_page(request: Request, _u: Viewer) -> Response:
    with ctx_of(request).engine.connect() as conn:
        data = views.alerts(conn, _params(request), _now())
    return _render(request, "alerts.html", {"nav": "alerts", **data, "notice": _notice(request)})


@router.get("/groups")
def groups_page(request: Request, _u: Viewer) -> Response:
    with ctx_of(request).engine.connect() as conn:
        data = views.groups(conn)
    return _render(request, "groups.html", {"nav": "groups", **data})


@router.get("/groups/{group_id}")
def group_page(request: Request, group_id: str, _u: Viewer) -> Response:
    with ctx_of(request).engine.connect() as conn:
        data = views.group(conn, group_id[:32])
    if data is None:
        return _not_found(request)
    return _render(request, "group.html", {"nav": "groups", **data})


@router.get("/forwarding")
def forwarding_page(request: Request, _u: Viewer) -> Response:
    with ctx_of(request).engine.connect() as conn:
        data = views.forward(conn, _now())
    return _render(request, "forwarding.html", {"nav": "forwarding", **data, "notice": _notice(request)})


@router.get("/users")
def users_page(request: Request, user: Viewer) -> Response:
    from sqlalchemy import select

    from hub.console.tables import console_audit, console_users

    if not user.can("admin"):
        return _render(request, "error.html", {"message": translator(request)("err.forbidden")}, 403)
    with ctx_of(request).engine.connect() as conn:
        users = (
            conn.execute(
                select(
                    console_users.c.name, console_users.c.role, console_users.c.disabled, console_users.c.last_login_ms
                ).order_by(console_users.c.name)
            )
            .mappings()
            .all()
        )
        log = conn.execute(select(console_audit).order_by(console_audit.c.id.desc()).limit(100)).mappings().all()
    return _render(
        request,
        "users.html",
        {"nav": "users", "users": users, "audit": log, "roles": ROLES, "notice": _notice(request)},
    )

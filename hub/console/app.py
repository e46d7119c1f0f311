"""The console's FastAPI application: sessions, roles, CSRF, rendering.

Server-rendered pages plus a JSON API under ``/api``; nothing is loaded from
outside the hub (county intranets are closed), so there is no Swagger UI, only
``/openapi.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from hub import __version__
from hub.config_console import ConsoleSettings  # noqa: F401  defined with the config section, its schema; re-exported for callers
from hub.console.context import ConsoleContext, Forbidden, NotLoggedIn, ctx_of, translator
from hub.console.i18n import fmt_duration, fmt_time

HERE = Path(__file__).parent

# Strict: no inline script or style anywhere, so an injected string can at worst be text.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


class Renderer:
    def __init__(self) -> None:
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.globals.update(
            fmt_time=fmt_time,
            fmt_duration=fmt_duration,
            version=__version__,
            qs=query_string,
            hasbit=lambda v, mask: bool(int(v) & mask),
            labelled=lambda values, t, prefix: [(v, t(prefix + v)) for v in values],
        )
        env.trim_blocks = True
        env.lstrip_blocks = True

    def page(self, request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
        import time

        t = translator(request)
        user = getattr(request.state, "user", None)
        base = {
            "t": t,
            "lang": t.lang,
            "user": user,
            "now_ms": int(time.time() * 1000),
            "csrf": user.csrf if user else "",
            "refresh_s": ctx_of(request).settings.refresh_s,
            "path": request.url.path,
            "here": str(request.url.path) + ("?" + request.url.query if request.url.query else ""),
        }
        base.update(context)
        resp = self.templates.TemplateResponse(request, name, base, status_code=status_code)
        return resp


def query_string(filters: dict[str, Any], **override: Any) -> str:
    """The current filters plus ``override``, empty values dropped (for sort and page links)."""
    merged = {**filters, **override}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def create_app(ctx: ConsoleContext) -> FastAPI:
    from hub.console import actions, api, audit_log, bulk, case_export, clips, maintenance, pages, rollouts, zones

    app = FastAPI(
        title="Xueliang console API",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        description="JSON behind the operators' console. Log in at /login; the session cookie "
        "authenticates every /api call. Times are epoch milliseconds (UTC).",
    )
    app.state.console = ctx
    app.state.renderer = Renderer()
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(api.router)
    app.include_router(rollouts.router)
    app.include_router(clips.router)
    app.include_router(zones.router)
    app.include_router(zones.api)
    from hub.console import escalation  # issue 21: chains, take-over, the live sound, contacts

    app.include_router(escalation.router)
    app.include_router(escalation.api)
    app.include_router(bulk.router)  # issue 21: bulk operations, the audit log viewer, case export
    app.include_router(bulk.api)
    app.include_router(audit_log.router)
    app.include_router(case_export.router)
    app.include_router(maintenance.router)  # issue 21: maintenance windows, alarm snoozes

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        resp: Response = await call_next(request)
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith("/static/"):
            resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.exception_handler(NotLoggedIn)
    async def to_login(request: Request, _exc: NotLoggedIn) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": "not logged in"}, status_code=401)
        here = request.url.path + ("?" + request.url.query if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        t = translator(request)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": t(exc.key)}, status_code=403)
        renderer: Renderer = app.state.renderer
        return renderer.page(request, "error.html", {"message": t(exc.key)}, status_code=403)

    return app

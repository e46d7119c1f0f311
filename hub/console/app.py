"""The console's FastAPI application: sessions, roles, CSRF, rendering.

Server-rendered pages plus a JSON API under ``/api``; nothing is loaded from
outside the hub (county intranets are closed), so there is no Swagger UI, only
``/openapi.json``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import quote, urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from hub import __version__
from hub.console import auth
from hub.console.i18n import LANG_COOKIE, Translator, fmt_duration, fmt_time

HERE = Path(__file__).parent
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

# Strict: no inline script or style anywhere, so an injected string can at worst be text.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


class CommandPublisher(Protocol):
    def send(self, device_id: str, op: str, args: dict[str, Any] | None) -> str: ...


@dataclass(frozen=True)
class ConsoleSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    session_hours: float = 12.0  # one shift plus a margin; logging in again each morning is expected
    secure_cookie: bool = False  # set true behind TLS (a reverse proxy)
    refresh_s: int = 5
    throttle: auth.Throttle = field(default_factory=auth.Throttle)


@dataclass
class ConsoleContext:
    engine: Engine
    settings: ConsoleSettings
    publisher: CommandPublisher | None = None


class NotLoggedIn(Exception):
    pass


class Forbidden(Exception):
    def __init__(self, key: str = "err.forbidden") -> None:
        super().__init__(key)
        self.key = key


def ctx_of(request: Request) -> ConsoleContext:
    return request.app.state.console  # type: ignore[no-any-return]


def translator(request: Request) -> Translator:
    return Translator(request.cookies.get(LANG_COOKIE, "zh"))


def current_user(request: Request) -> auth.User:
    user = getattr(request.state, "user", None)
    if user is None:
        user = auth.session_user(ctx_of(request).engine, request.cookies.get(auth.SESSION_COOKIE))
        if user is None:
            raise NotLoggedIn()
        request.state.user = user
    return user  # type: ignore[no-any-return]


async def check_csrf(request: Request, user: Annotated[auth.User, Depends(current_user)]) -> auth.User:
    """Every unsafe request must carry the session's token (form field or header)."""
    if request.method in SAFE_METHODS:
        return user
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and "form" in request.headers.get("content-type", ""):
        sent = (await request.form()).get(CSRF_FIELD)  # type: ignore[assignment]
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), user.csrf.encode()):
        raise Forbidden("err.csrf")
    return user


def require(role: str) -> Callable[..., Any]:
    def dep(user: Annotated[auth.User, Depends(check_csrf)]) -> auth.User:
        if not user.can(role):
            raise Forbidden()
        return user

    return dep


Viewer = Annotated[auth.User, Depends(current_user)]
Operator = Annotated[auth.User, Depends(require("operator"))]
Admin = Annotated[auth.User, Depends(require("admin"))]
AnyUser = Annotated[auth.User, Depends(require("viewer"))]  # any role, CSRF checked (for POSTs)


def safe_next(target: str | None) -> str:
    """Only local paths, so ``?next=`` cannot send an operator to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class Renderer:
    def __init__(self) -> None:
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        env = self.templates.env
        env.globals.update(fmt_time=fmt_time, fmt_duration=fmt_duration, version=__version__, qs=query_string,
                           hasbit=lambda v, mask: bool(int(v) & mask),
                           labelled=lambda values, t, prefix: [(v, t(prefix + v)) for v in values])
        env.trim_blocks = True
        env.lstrip_blocks = True

    def page(self, request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
        import time

        t = translator(request)
        user = getattr(request.state, "user", None)
        base = {"t": t, "lang": t.lang, "user": user, "now_ms": int(time.time() * 1000),
                "csrf": user.csrf if user else "", "refresh_s": ctx_of(request).settings.refresh_s,
                "path": request.url.path, "here": str(request.url.path) + (
                    "?" + request.url.query if request.url.query else "")}
        base.update(context)
        resp = self.templates.TemplateResponse(request, name, base, status_code=status_code)
        return resp  # type: ignore[return-value]


def query_string(filters: dict[str, Any], **override: Any) -> str:
    """The current filters plus ``override``, empty values dropped (for sort and page links)."""
    merged = {**filters, **override}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def create_app(ctx: ConsoleContext) -> FastAPI:
    from hub.console import actions, api, pages

    app = FastAPI(title="Xueliang console API", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url="/openapi.json",
                  description="JSON behind the operators' console. Log in at /login; the session cookie "
                              "authenticates every /api call. Times are epoch milliseconds (UTC).")
    app.state.console = ctx
    app.state.renderer = Renderer()
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(api.router)

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
        return app.state.renderer.page(request, "error.html", {"message": t(exc.key)}, status_code=403)

    return app


def new_login_token() -> str:
    return secrets.token_urlsafe(24)

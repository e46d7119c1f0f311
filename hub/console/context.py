"""What every console route needs: the console's context, who is asking and
whether their role may, the CSRF check, and safe redirects.

Apart from ``app`` (which builds the application from the routers) so that
the routers (``pages``, ``actions``, ``api``) import this and ``app`` imports
them, without a circle.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy import Engine

from hub.config_console import Throttle
from hub.config_escalation import EscalationConfig
from hub.console import auth
from hub.console.clip_source import ClipSource
from hub.console.i18n import LANG_COOKIE, Translator

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class CommandPublisher(Protocol):
    def send(self, device_id: str, op: str, args: dict[str, Any] | None) -> str: ...


class RouteSettings(Protocol):
    """What the console's server and routes read of its settings (``ConsoleSettings``)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def session_hours(self) -> float: ...

    @property
    def secure_cookie(self) -> bool: ...

    @property
    def refresh_s(self) -> int: ...

    @property
    def throttle(self) -> Throttle: ...


@dataclass
class ConsoleContext:
    engine: Engine
    settings: RouteSettings
    publisher: CommandPublisher | None = None
    clips: ClipSource | None = None  # None: this hub keeps no clips (clips.enabled is false)
    # The key of the webhook's signed clip links (forward.webhook.clip_link_secret_file); None: no links accepted.
    clip_link_key: bytes | None = field(default=None, repr=False)
    # Issue 21: the chain the escalation page shows, and the secrets its signed ack callback checks.
    escalation: EscalationConfig | None = field(default=None, repr=False)


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
    return user


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


def new_login_token() -> str:
    return secrets.token_urlsafe(24)

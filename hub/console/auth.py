"""Operator accounts, sessions, login throttling and CSRF tokens.

Sessions are opaque random tokens (256 bits) looked up server-side, so there
is no signing key to manage or leak, and logout or disabling a user ends the
session at once. The cookie is HttpOnly and SameSite=Lax; each session has its
own CSRF token that every unsafe request must echo (form field or header).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, select, update

from hub.config_console import Throttle  # the login throttle's settings: the config section is their schema
from hub.console.passwords import DUMMY_HASH, hash_password, verify_password
from hub.console.tables import ROLES, console_audit, console_login_failures, console_sessions, console_users
from hub.registry import now_ms

SESSION_COOKIE = "xl_session"
ROLE_RANK = {role: i for i, role in enumerate(ROLES)}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    csrf: str

    def can(self, role: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def valid_name(name: str) -> bool:
    return 1 <= len(name) <= 32 and all(c.isalnum() or c in "._-" for c in name)


def add_user(engine: Engine, name: str, role: str, password: str) -> None:
    if not valid_name(name):
        raise ValueError("user name: 1-32 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters")
    hashed = hash_password(password)
    with engine.begin() as conn:
        exists = conn.execute(select(console_users.c.name).where(console_users.c.name == name)).first()
        if exists is not None:
            # Re-adding resets password and role: the documented way to recover an account.
            conn.execute(
                update(console_users)
                .where(console_users.c.name == name)
                .values(role=role, password_hash=hashed, disabled=False)
            )
            conn.execute(delete(console_sessions).where(console_sessions.c.user_name == name))
        else:
            conn.execute(
                console_users.insert().values(
                    name=name, role=role, password_hash=hashed, disabled=False, created_ms=now_ms()
                )
            )
        audit(conn, None, "user_add", name, f"role={role}")


def set_disabled(engine: Engine, actor: str, name: str, disabled: bool) -> bool:
    with engine.begin() as conn:
        done = conn.execute(
            update(console_users).where(console_users.c.name == name).values(disabled=disabled)
        ).rowcount
        if disabled:
            conn.execute(delete(console_sessions).where(console_sessions.c.user_name == name))
        audit(conn, actor, "user_disable" if disabled else "user_enable", name, None)
    return bool(done)


def audit(conn: Connection, user: str | None, action: str, target: str | None, detail: str | None) -> None:
    conn.execute(
        console_audit.insert().values(
            at_ms=now_ms(),
            user_name=user,
            action=action,
            target=None if target is None else target[:64],
            detail=None if detail is None else detail[:200],
        )
    )


class LoginLocked(Exception):
    def __init__(self, retry_after_s: int) -> None:
        super().__init__(retry_after_s)
        self.retry_after_s = retry_after_s


def _locked_for(conn: Connection, key: str, now: int) -> int:
    until = conn.execute(
        select(console_login_failures.c.locked_until_ms).where(console_login_failures.c.key == key)
    ).scalar()
    return 0 if until is None or until <= now else (until - now + 999) // 1000


_THROTTLE = Throttle()  # the configured defaults


def _fail(conn: Connection, key: str, limit: int, throttle: Throttle, now: int) -> None:
    row = conn.execute(select(console_login_failures).where(console_login_failures.c.key == key)).first()
    if row is None or now - row.window_start_ms > throttle.window_s * 1000:
        values = {"failures": 1, "window_start_ms": now, "locked_until_ms": None}
    else:
        values = {
            "failures": row.failures + 1,
            "window_start_ms": row.window_start_ms,
            "locked_until_ms": row.locked_until_ms,
        }
    if int(values["failures"] or 0) >= limit:
        values = {"failures": 0, "window_start_ms": now, "locked_until_ms": now + throttle.lockout_s * 1000}
    if row is None:
        conn.execute(console_login_failures.insert().values(key=key, **values))
    else:
        conn.execute(update(console_login_failures).where(console_login_failures.c.key == key).values(**values))


def login(
    engine: Engine, name: str, password: str, ip: str, *, session_s: int, throttle: Throttle = _THROTTLE
) -> str | None:
    """A new session token, or None for bad credentials; raises LoginLocked while throttled.

    A locked account is refused even with the right password, otherwise the
    lock would not slow down a guesser at all.
    """
    now = now_ms()
    ukey, ikey = f"u:{name[:64]}", f"ip:{ip[:64]}"
    with engine.connect() as conn:
        wait = max(_locked_for(conn, ukey, now), _locked_for(conn, ikey, now))
        row = conn.execute(select(console_users).where(console_users.c.name == name)).first()
    if wait:
        raise LoginLocked(wait)
    ok = verify_password(password, row.password_hash if row is not None else DUMMY_HASH)
    ok = ok and row is not None and not row.disabled
    with engine.begin() as conn:
        if not ok:
            _fail(conn, ukey, throttle.user_failures, throttle, now)
            _fail(conn, ikey, throttle.ip_failures, throttle, now)
            audit(conn, None, "login_failed", name[:64], f"ip={ip}")
            return None
        conn.execute(delete(console_login_failures).where(console_login_failures.c.key == ukey))
        conn.execute(delete(console_sessions).where(console_sessions.c.expires_ms < now))
        token = secrets.token_urlsafe(32)
        conn.execute(
            console_sessions.insert().values(
                token_hash=_token_hash(token),
                user_name=name,
                csrf=secrets.token_urlsafe(32),
                created_ms=now,
                expires_ms=now + session_s * 1000,
                ip=ip[:64],
            )
        )
        conn.execute(update(console_users).where(console_users.c.name == name).values(last_login_ms=now))
        audit(conn, name, "login", None, f"ip={ip}")
    return token


def session_user(engine: Engine, token: str | None) -> User | None:
    if not token or len(token) > 100:
        return None
    query = (
        select(
            console_users.c.name,
            console_users.c.role,
            console_users.c.disabled,
            console_sessions.c.csrf,
            console_sessions.c.expires_ms,
        )
        .join(console_users, console_users.c.name == console_sessions.c.user_name)
        .where(console_sessions.c.token_hash == _token_hash(token))
    )
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None or row.disabled or row.expires_ms <= now_ms():
        return None
    return User(row.name, row.role, row.csrf)


def logout(engine: Engine, token: str | None) -> None:
    if token:
        with engine.begin() as conn:
            conn.execute(delete(console_sessions).where(console_sessions.c.token_hash == _token_hash(token)))

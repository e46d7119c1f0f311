"""Everything that changes state: each route takes the role it needs and, through
it, the CSRF check; each records who did it in the audit table."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from hub.console import auth, forwarding, ops, views
from hub.console.context import Admin, AnyUser, Operator, ctx_of

router = APIRouter(include_in_schema=False)

# The console offers only the harmless, everyday commands; config, reload and
# restart stay with the installers' tools.
CONSOLE_OPS = ("snapshot", "arm", "disarm", "identify")


def _back(path: str, **params: object) -> RedirectResponse:
    return RedirectResponse(path + ("?" + urlencode(params) if params else ""), status_code=303)


@router.post("/logout")
def logout(request: Request, _u: AnyUser) -> Response:
    auth.logout(ctx_of(request).engine, request.cookies.get(auth.SESSION_COOKIE))
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(auth.SESSION_COOKIE, path="/")
    return resp


@router.post("/devices/{device_id}/command")
def command(request: Request, device_id: str, user: Operator, op: str = Form("")) -> Response:
    from hub.commands import CommandError
    from protocol.errors import ProtocolError

    if not views.DEVICE_RE.match(device_id) or op not in CONSOLE_OPS:
        return Response(status_code=400)
    ctx = ctx_of(request)
    here = f"/devices/{device_id}"
    if ctx.publisher is None:
        return _back(here, notice="no_channel")
    args = {"s": 30} if op == "identify" else None
    try:
        command_id = ctx.publisher.send(device_id, op, args)
    except (CommandError, ProtocolError) as exc:
        return _back(here, notice="cmd_failed", err=str(exc)[:200])
    with ctx.engine.begin() as conn:
        auth.audit(conn, user.name, "command", device_id, f"{op} id={command_id}")
    return _back(here, notice="cmd_sent", op=op, cmd=command_id)


@router.post("/devices/{device_id}/revoke")
def revoke(request: Request, device_id: str, user: Admin) -> Response:
    from hub.registry import Registry

    if not views.DEVICE_RE.match(device_id):
        return Response(status_code=400)
    ctx = ctx_of(request)
    if Registry(ctx.engine).revoke_device(device_id, f"revoked in console by {user.name}"):
        with ctx.engine.begin() as conn:
            auth.audit(conn, user.name, "revoke", device_id, None)
    return _back(f"/devices/{device_id}", notice="revoked")


@router.post("/alarms/{alarm_id}/ack")
def ack_alarm(request: Request, alarm_id: int, user: Operator, back: str = Form("/alerts")) -> Response:
    from hub.console.context import safe_next

    ctx = ctx_of(request)
    with ctx.engine.begin() as conn:
        if ops.ack_alarm(conn, alarm_id, user.name, int(time.time() * 1000)):
            auth.audit(conn, user.name, "alarm_ack", str(alarm_id), None)
    return _back(safe_next(back).split("?")[0], notice="acked")


@router.post("/forwarding/retry")
async def retry(request: Request, user: Operator) -> Response:
    form = await request.form()
    ids = None if form.get("all") else [i for i in (views.as_int(str(v)) for v in form.getlist("id")) if i]
    ctx = ctx_of(request)
    with ctx.engine.begin() as conn:
        n = forwarding.retry(conn, ids, int(time.time() * 1000))
        auth.audit(conn, user.name, "forward_retry", None, f"{n} item(s)")
    return _back("/forwarding", notice="retried", n=n)


@router.post("/users")
def add_user(
    request: Request, user: Admin, name: str = Form(""), role: str = Form("viewer"), password: str = Form("")
) -> Response:
    try:
        auth.add_user(ctx_of(request).engine, name.strip(), role, password)
    except ValueError as exc:
        return _back("/users", notice="error", err=str(exc))
    return _back("/users", notice="user_saved")


@router.post("/users/{name}/disabled")
def disable_user(request: Request, name: str, user: Admin, disabled: str = Form("1")) -> Response:
    if name != user.name:  # an admin cannot lock themself out by accident
        auth.set_disabled(ctx_of(request).engine, user.name, name, disabled == "1")
    return _back("/users")

"""The zones editor (issue 20): masks, zones and profiles drawn on the device's own
picture and pushed to it with the ``config`` command.

The page is ``/devices/{id}/zones``; the editor itself is static/zones.js and
static/zones_canvas.js, which talk to the JSON routes here. Keeping a push's
history and matching the device's ack to it is hub.configs.service's job; this
module only checks who may do what, validates the request, audits, and shapes
the answers for the page.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection, select

from hub.console import auth, views
from hub.console.context import Admin, Operator, Viewer, ctx_of, translator
from hub.db.schema import devices, households, villages
from hub.db.schema_ops import commands, snapshots

router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api", tags=["zones"])

MAX_TEMPLATE = 64
# A whole-frame picture is what the polygons are fractions of; an event's crop is
# not, so only pictures without a crop (a `snapshot` command's answer) are offered.
WHOLE_FRAME = (None, [0, 0, 1000, 1000])
RECENT_SNAPSHOTS = 30


def _now() -> int:
    return int(time.time() * 1000)


def _bad(detail: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _pushes(request: Request) -> Any:
    from hub.configs.service import ConfigPushes

    ctx = ctx_of(request)
    return ConfigPushes(ctx.engine, None if ctx.publisher is None else ctx.publisher.send)


def device_place(conn: Connection, device_id: str) -> dict[str, Any] | None:
    """The device with its household's village (id and name), or None if unknown."""
    row = (
        conn.execute(
            select(
                devices.c.id,
                devices.c.status,
                households.c.name.label("hh_name"),
                villages.c.id.label("village_id"),
                villages.c.name.label("village"),
            )
            .join(households, households.c.id == devices.c.household_id)
            .join(villages, villages.c.id == households.c.village_id)
            .where(devices.c.id == device_id)
        )
        .mappings()
        .first()
    )
    return None if row is None else dict(row)


def latest_picture(conn: Connection, device_id: str, after_ms: int | None = None) -> dict[str, Any] | None:
    """The newest whole-frame snapshot of the device (received after ``after_ms``, if given)."""
    query = (
        select(snapshots.c.id, snapshots.c.width, snapshots.c.height, snapshots.c.crop, snapshots.c.received_ms)
        .where(snapshots.c.device_id == device_id)
        .order_by(snapshots.c.id.desc())
        .limit(RECENT_SNAPSHOTS)
    )
    if after_ms is not None:
        query = query.where(snapshots.c.received_ms > after_ms)
    for row in conn.execute(query).mappings():
        if row["crop"] in WHOLE_FRAME:
            return {
                "id": int(row["id"]),
                "url": f"/snapshots/{row['id']}.jpg",
                "width": int(row["width"]),
                "height": int(row["height"]),
                "received_ms": int(row["received_ms"]),
            }
    return None


# -- the page ----------------------------------------------------------------------


@router.get("/devices/{device_id}/zones")
def zones_page(request: Request, device_id: str, user: Viewer) -> Response:
    if not views.DEVICE_RE.match(device_id):
        return Response(status_code=400)
    with ctx_of(request).engine.connect() as conn:
        place = device_place(conn, device_id)
        picture = latest_picture(conn, device_id) if place else None
    if place is None:
        t = translator(request)
        return request.app.state.renderer.page(request, "error.html", {"message": t("err.not_found")}, 404)  # type: ignore[no-any-return]
    return request.app.state.renderer.page(  # type: ignore[no-any-return]
        request,
        "zones.html",
        {
            "nav": "devices",
            "d": place,
            "picture": picture,
            "can_edit": user.can("operator") and place["status"] == "active",
            # Village pushes are admin-only: one click changes when every household of the
            # village is alerted (or silenced), a reach the console gives only admins (as revoke).
            "can_village": user.can("admin"),
            "has_publisher": ctx_of(request).publisher is not None,
        },
    )


# -- JSON --------------------------------------------------------------------------


@api.get("/devices/{device_id}/config", summary="The device's applied zones config and its push history")
def config_state(request: Request, device_id: str, _u: Viewer) -> Response:
    if not views.DEVICE_RE.match(device_id):
        return _bad("bad device id")
    with ctx_of(request).engine.connect() as conn:
        if device_place(conn, device_id) is None:
            return _bad("unknown device", 404)
    pushes = _pushes(request)
    return JSONResponse({"current": pushes.current(device_id), "history": pushes.history(device_id)})


@api.get("/devices/{device_id}/picture", summary="Newest whole-frame snapshot, after=<ms> for a newer one only")
def picture(request: Request, device_id: str, _u: Viewer, after: str = "", command: str = "") -> Response:
    if not views.DEVICE_RE.match(device_id):
        return _bad("bad device id")
    after_ms = views.as_int(after) if after else None
    if after and after_ms is None:
        return _bad("after: epoch milliseconds")
    with ctx_of(request).engine.connect() as conn:
        snap = latest_picture(conn, device_id, after_ms)
        answer = None
        if command:
            # The snapshot command's own ack: a device that cannot take one says why.
            row = conn.execute(
                select(commands.c.ack_ms, commands.c.ok, commands.c.error).where(
                    commands.c.id == command[:36], commands.c.device_id == device_id
                )
            ).first()
            answer = None if row is None else {"ack_ms": row.ack_ms, "ok": row.ok, "error": row.error}
    return JSONResponse({"picture": snap, "command": answer})


@api.post("/devices/{device_id}/picture", summary="Ask the device for a live picture (the snapshot command)")
def take_picture(request: Request, device_id: str, user: Operator) -> Response:
    from hub.commands import CommandError
    from protocol.errors import ProtocolError

    if not views.DEVICE_RE.match(device_id):
        return _bad("bad device id")
    ctx = ctx_of(request)
    if ctx.publisher is None:
        return _bad(translator(request)("cmd.no_channel"), 503)
    # Taken before sending: the picture that answers must be received after this.
    since = _now()
    try:
        command_id = ctx.publisher.send(device_id, "snapshot", None)
    except (CommandError, ProtocolError) as exc:
        return _bad(str(exc)[:200], 502)
    with ctx.engine.begin() as conn:
        auth.audit(conn, user.name, "command", device_id, f"snapshot id={command_id}")
    return JSONResponse({"command_id": command_id, "since_ms": since})


async def _body(request: Request) -> tuple[dict[str, Any], str | None] | JSONResponse:
    """The push's JSON body: ``{"vision": {...}, "template": "name"?}``, validated."""
    from hub.configs.service import check_vision_doc

    try:
        body = await request.json()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json.loads goes
        return _bad("body: not JSON")
    if not isinstance(body, dict) or not isinstance(body.get("vision"), dict):
        return _bad("vision: an object is required")
    template = body.get("template")
    if template is not None and (
        not isinstance(template, str) or not 0 < len(template.strip()) <= MAX_TEMPLATE or not template.isprintable()
    ):  # isprintable: no NUL nor lone surrogate, which the database's insert would fail on (a 500)
        return _bad(f"template: 1-{MAX_TEMPLATE} printable characters")
    try:
        check_vision_doc(body["vision"])
    except ValueError as exc:
        return _bad(str(exc)[:300])
    return body["vision"], None if template is None else template.strip()


def _result(r: Any) -> dict[str, Any]:
    return {"device_id": r.device_id, "rev": r.rev, "command_id": r.command_id, "error": r.error}


def _audit_push(request: Request, user: str, r: Any, template: str | None, village: int | None = None) -> None:
    detail = f"rev={r.rev} id={r.command_id or '-'}"
    if template:
        detail += f" template={template}"
    if village is not None:
        detail += f" village={village}"
    if r.error:
        detail += f" error={r.error}"
    with ctx_of(request).engine.begin() as conn:
        auth.audit(conn, user, "config_push", r.device_id, detail)


@api.post("/devices/{device_id}/config", summary="Push masks, zones and profiles to the device")
async def push_config(request: Request, device_id: str, user: Operator) -> Response:
    if not views.DEVICE_RE.match(device_id):
        return _bad("bad device id")
    parsed = await _body(request)
    if isinstance(parsed, JSONResponse):
        return parsed
    vision, template = parsed
    with ctx_of(request).engine.connect() as conn:
        place = device_place(conn, device_id)
    if place is None:
        return _bad("unknown device", 404)
    if place["status"] != "active":
        return _bad(f"device is {place['status']}", 409)
    try:
        result = _pushes(request).push(device_id, vision, user.name, template=template)
    except ValueError as exc:  # the service validates too; its reason names the key
        return _bad(str(exc)[:300])
    _audit_push(request, user.name, result, template)
    return JSONResponse(_result(result))


@api.post("/villages/{village_id}/config", summary="Push one template to every device of a village")
async def push_village(request: Request, village_id: str, user: Admin) -> Response:
    vid = views.as_int(village_id)
    if vid is None or vid < 0:
        return _bad("bad village id")
    parsed = await _body(request)
    if isinstance(parsed, JSONResponse):
        return parsed
    vision, template = parsed
    if template is None:
        return _bad("template: a name is required for a village push")
    with ctx_of(request).engine.connect() as conn:
        if conn.execute(select(villages.c.id).where(villages.c.id == vid)).first() is None:
            return _bad("unknown village", 404)
    try:
        results = _pushes(request).push_village(vid, vision, user.name, template=template)
    except ValueError as exc:
        return _bad(str(exc)[:300])
    for r in results:
        _audit_push(request, user.name, r, template, vid)
    return JSONResponse({"village_id": vid, "template": template, "results": [_result(r) for r in results]})

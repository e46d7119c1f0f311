"""The escalation pages (issue 21, docs/escalation.md): the chains with each step's
notices, the configured chain per group, an operator's take-over, the live poll
(with its sound, static/escalation.js), the gateways' signed acknowledgement
callback, and the contacts list.

Phone numbers: viewers and operators see them masked (138****5678) everywhere;
an admin, who registers and corrects them, sees them in full on the contacts
page only. The audit log names a contact by id, never by number.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from hub.config_escalation import STEP_ROLES, EscalationConfig
from hub.console import auth
from hub.console.context import Admin, Operator, Viewer, ctx_of
from hub.contacts import store
from hub.contacts.tables import ROLES
from hub.escalation import engine as escalation
from hub.escalation import records
from hub.escalation.tables import escalation_notices
from hub.forward.webhook import verify_signature

log = logging.getLogger("xl.hub.console")
router = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/api/escalation", tags=["escalation"])


def _now() -> int:
    return int(time.time() * 1000)


def _config(request: Request) -> EscalationConfig:
    return ctx_of(request).escalation or EscalationConfig()


def chain_view(cfg: EscalationConfig) -> list[dict[str, Any]]:
    """The chain as configured: the default, then each group that has its own."""
    out = []
    for gid in ["*", *sorted(cfg.groups)]:
        g = cfg.chain("" if gid == "*" else gid)
        out.append(
            {
                "group": gid,
                "steps": list(g.steps),
                "panic_s": list(cfg.delays_s(gid, "panic")),
                "person_s": list(cfg.delays_s(gid, "person")),
            }
        )
    return out


@router.get("/escalation")
def escalation_page(request: Request, _u: Viewer) -> Response:
    cfg = _config(request)
    with ctx_of(request).engine.connect() as conn:
        chains = records.recent(conn)
    context = {
        "nav": "escalation",
        "chains": chains,
        "enabled": cfg.enabled,
        "chain_config": chain_view(cfg),
        "step_roles": STEP_ROLES,
        "webhook_roles": sorted(cfg.webhooks),
        "mqtt": cfg.mqtt,
        "notice": request.query_params.get("notice", "")[:40],
    }
    return request.app.state.renderer.page(request, "escalation.html", context)  # type: ignore[no-any-return]


@router.post("/escalation/{alert_id}/ack")
def take_over(request: Request, alert_id: str, user: Operator) -> Response:
    ctx = ctx_of(request)
    with ctx.engine.begin() as conn:
        done = escalation.ack(conn, alert_id[:36], user.name, "console", _now())
        if done:
            auth.audit(conn, user.name, "escalation_ack", alert_id[:36], None)
    return RedirectResponse(f"/escalation?notice={'taken_over' if done else 'already_acked'}", status_code=303)


@api.get("/live", summary="Open escalation chains, for the console's live banner and sound")
def live(request: Request, _u: Viewer) -> dict[str, Any]:
    now = _now()
    with ctx_of(request).engine.connect() as conn:
        chains = records.live(conn, now - 600_000)
    return {"now_ms": now, "chains": chains}


@api.post("/ack", summary="A gateway's signed acknowledgement: {alert_id, contact_id}")
async def callback_ack(request: Request) -> Response:
    """Signed like the webhook (X-XL-Timestamp, X-XL-Signature over ``<ts>.<body>``)
    with the secret of the contact's role; accepted only from a contact the chain
    notified by webhook. No session: the gateway has none."""
    cfg = _config(request)
    raw = await request.body()
    try:
        body = json.loads(raw)
        alert_id, contact_id = str(body["alert_id"])[:36], str(body["contact_id"])[:32]
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"detail": "expected {alert_id, contact_id}"}, status_code=400)
    ctx = ctx_of(request)
    with ctx.engine.begin() as conn:
        contact = store.by_id(conn, contact_id)
        role = None if contact is None else contact.role
        if role is None or role not in cfg.webhooks:
            return JSONResponse({"detail": "bad signature"}, status_code=401)
        if not verify_signature(cfg.secret(role), raw, request.headers, cfg.ack_max_skew_s):
            return JSONResponse({"detail": "bad signature"}, status_code=401)
        notified = conn.execute(
            escalation_notices.select().where(
                escalation_notices.c.alert_id == alert_id,
                escalation_notices.c.channel == "webhook",
                escalation_notices.c.target == contact_id,
            )
        ).first()
        if notified is None:
            return JSONResponse({"detail": "this contact was not notified of this alert"}, status_code=404)
        done = escalation.ack(conn, alert_id, contact_id, "webhook", _now())
        auth.audit(conn, f"gateway:{role}", "escalation_ack", alert_id, f"contact={contact_id} first={done}")
    return JSONResponse({"acknowledged": done})


# -- contacts ---------------------------------------------------------------------


@router.get("/contacts")
def contacts_page(request: Request, user: Viewer) -> Response:
    with ctx_of(request).engine.connect() as conn:
        rows = store.list_contacts(conn)
    full = user.can("admin")
    shown = [{**r._mapping, "phone_shown": (r.phone or "") if full else store.mask(r.phone)} for r in rows]
    context = {
        "nav": "contacts",
        "contacts": shown,
        "roles": ROLES,
        "notice": request.query_params.get("notice", "")[:40],
        "err": request.query_params.get("err", "")[:200],
    }
    return request.app.state.renderer.page(request, "contacts.html", context)  # type: ignore[no-any-return]


@router.post("/contacts")
def save_contact(
    request: Request,
    user: Admin,
    contact_id: str = Form(""),
    name: str = Form(""),
    role: str = Form(""),
    phone: str = Form(""),
    township: str = Form(""),
    village: str = Form(""),
    device_id: str = Form(""),
) -> Response:
    from urllib.parse import urlencode

    c = store.ContactIn(
        contact_id.strip(), name, role, phone or None, township or None, village or None, device_id or None
    )
    ctx = ctx_of(request)
    try:
        with ctx.engine.begin() as conn:
            changed = store.upsert(conn, c, user.name)
            if changed:
                auth.audit(conn, user.name, "contact_save", c.id, f"role={role}")
    except store.ContactError as exc:
        return RedirectResponse("/contacts?" + urlencode({"err": str(exc)}), status_code=303)
    return RedirectResponse("/contacts?notice=saved", status_code=303)


@router.post("/contacts/{contact_id}/active")
def set_active(request: Request, contact_id: str, user: Admin, active: str = Form("0")) -> Response:
    ctx = ctx_of(request)
    with ctx.engine.begin() as conn:
        if store.set_active(conn, contact_id[:32], active == "1", user.name):
            auth.audit(conn, user.name, "contact_enable" if active == "1" else "contact_disable", contact_id[:32], None)
    return RedirectResponse("/contacts", status_code=303)

"""The rollouts pages: the list, one rollout per cohort and per village with
its failures, and pause/resume/abort for operators. Each button is written to
the rollout's own audit log (by the rollout store) and to the console's."""

from __future__ import annotations

import time

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from hub.console import auth
from hub.console.context import Operator, Viewer, ctx_of, translator
from hub.rollout import status, store

router = APIRouter(include_in_schema=False)
ACTIONS = ("pause", "resume", "abort")


@router.get("/rollouts")
def rollouts_page(request: Request, _u: Viewer) -> Response:
    with ctx_of(request).engine.connect() as conn:
        rows = status.list_rollouts(conn)
    return request.app.state.renderer.page(request, "rollouts.html", {"nav": "rollouts", "rollouts": rows})  # type: ignore[no-any-return]


@router.get("/rollouts/{rollout_id}")
def rollout_page(request: Request, rollout_id: int, _u: Viewer) -> Response:
    with ctx_of(request).engine.connect() as conn:
        detail = status.rollout_detail(conn, rollout_id)
    renderer = request.app.state.renderer
    if detail is None:
        return renderer.page(request, "error.html", {"message": translator(request)("err.not_found")}, 404)  # type: ignore[no-any-return]
    notice = request.query_params.get("err", "")[:200] or (
        translator(request)("ro.done_" + request.query_params["did"])
        if request.query_params.get("did") in ACTIONS
        else ""
    )
    return renderer.page(request, "rollout.html", {"nav": "rollouts", **detail, "notice": notice})  # type: ignore[no-any-return]


@router.post("/rollouts/{rollout_id}/{action}")
def rollout_action(request: Request, rollout_id: int, action: str, user: Operator, reason: str = Form("")) -> Response:
    if action not in ACTIONS:
        return Response(status_code=404)
    ctx = ctx_of(request)
    why = reason.strip()[:200] or None
    try:
        getattr(store, action)(ctx.engine, rollout_id, user.name, int(time.time() * 1000), why)
    except store.RolloutError as exc:
        from urllib.parse import urlencode

        return RedirectResponse(f"/rollouts/{rollout_id}?{urlencode({'err': str(exc)})}", status_code=303)
    with ctx.engine.begin() as conn:
        auth.audit(conn, user.name, f"rollout_{action}", str(rollout_id), why)
    return RedirectResponse(f"/rollouts/{rollout_id}?did={action}", status_code=303)

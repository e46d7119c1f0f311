"""``/api``: the JSON behind the pages, for scripts and the live updates.

Same session cookie as the pages (401 without it). Times are epoch ms (UTC);
the pages convert them to Asia/Shanghai.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request

from hub.console import fleet, views
from hub.console.context import Viewer, ctx_of

router = APIRouter(prefix="/api", tags=["console"])


def _now() -> int:
    return int(time.time() * 1000)


def _params(request: Request) -> dict[str, str]:
    return dict(request.query_params.items())


@router.get("/live", summary="Headline counters (polled by every page for live updates)")
def live(request: Request, _u: Viewer) -> dict[str, Any]:
    with ctx_of(request).engine.connect() as conn:
        return {"now_ms": _now(), **asdict(fleet.counts(conn, _now()))}


@router.get("/overview", summary="Counters, township → village breakdown, worst-health devices")
def overview(request: Request, _u: Viewer) -> dict[str, Any]:
    with ctx_of(request).engine.connect() as conn:
        return views.overview(conn, _now())


@router.get("/devices", summary="Device table: filter with q, village, group, township, status; sort with sort, dir")
def devices(
    request: Request,
    _u: Viewer,
    q: str = Query("", description="device ID, household ID or name contains"),
    village: str = Query("", description="village id"),
    group: str = "",
    township: str = "",
    status: str = Query("", description="online | offline | armed | revoked | alarm"),
    sort: str = Query("health", description="one of " + ", ".join(fleet.SORT_KEYS)),
    dir: str = Query("asc", description="asc | desc"),
    page: str = "1",
) -> dict[str, Any]:
    with ctx_of(request).engine.connect() as conn:
        data = views.devices(conn, _now(), _params(request))
    data.pop("choices")
    return data


@router.get("/devices/{device_id}", summary="One device with its latest heartbeat and 24 h health history")
def device(request: Request, device_id: str, _u: Viewer) -> dict[str, Any]:
    with ctx_of(request).engine.connect() as conn:
        data = views.device(conn, device_id, _now())
    if data is None:
        raise HTTPException(404, "unknown device")
    return data


@router.get("/events", summary="Events, newest first; before=<row id> pages back")
def events(
    request: Request,
    _u: Viewer,
    kind: str = Query("", description="motion | person | panic | tamper"),
    village: str = "",
    device: str = "",
    since: str = Query("", description="YYYY-MM-DD[THH:MM], Asia/Shanghai"),
    until: str = "",
    before: str = "",
    limit: str = "100",
) -> dict[str, Any]:
    with ctx_of(request).engine.connect() as conn:
        data = views.events(conn, _params(request))
    data.pop("choices")
    for row in data["rows"]:
        row["snapshot_url"] = None if row["snap_id"] is None else f"/snapshots/{row['snap_id']}.jpg"
    return data


@router.get("/alerts", summary="十户联防 alerts (open first) and operator alarms")
def alerts(
    request: Request, _u: Viewer, status: str = Query("", description="open | closed"), group: str = ""
) -> dict[str, Any]:
    with ctx_of(request).engine.connect() as conn:
        return views.alerts(conn, _params(request), _now())


@router.get("/groups", summary="联防组 with leader, members, alert count and median response time")
def groups(request: Request, _u: Viewer) -> dict[str, Any]:
    with ctx_of(request).engine.connect() as conn:
        return views.groups(conn)


@router.get("/groups/{group_id}", summary="One group's members and recent alerts")
def group(request: Request, group_id: str, _u: Viewer) -> dict[str, Any]:
    with ctx_of(request).engine.connect() as conn:
        data = views.group(conn, group_id[:32])
    if data is None:
        raise HTTPException(404, "unknown group")
    return data


@router.get("/forwarding", summary="Forward outbox per sink: depth, oldest item, dead letters")
def forwarding(request: Request, _u: Viewer) -> dict[str, Any]:
    with ctx_of(request).engine.connect() as conn:
        return views.forward(conn, _now())

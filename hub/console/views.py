"""What each page shows, built once and used by both the HTML page and ``/api``.

Request parameters arrive as strings and are parsed here: numbers to ints,
choices against fixed lists. Nothing from a request reaches SQL other than as
a bound parameter.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection

from hub.console import fleet, forwarding, maintenance, ops
from hub.console.i18n import parse_local

DEVICE_RE = re.compile(r"^\d{20}$")
PAGE_SIZE = 200


def as_int(value: str | None) -> int | None:
    if value is None or not value.strip().lstrip("-").isdigit() or len(value) > 18:
        return None
    return int(value)


def overview(conn: Connection, now_ms: int) -> dict[str, Any]:
    rows = fleet.device_rows(conn, now_ms)
    worst = [d for d in fleet.sort_rows(rows, "health", False) if d["badness"] > 0][:12]
    return {"counts": asdict(fleet.counts(conn, now_ms)), "breakdown": fleet.breakdown(conn), "worst": worst}


def devices(conn: Connection, now_ms: int, params: dict[str, str]) -> dict[str, Any]:
    status = params.get("status", "")
    filters = {
        "q": params.get("q", "")[:64].strip(),
        "village": as_int(params.get("village")),
        "group": params.get("group", "")[:32],
        "township": params.get("township", "")[:2],
        "status": status if status in fleet.STATUS_FILTERS else "",
    }
    sort = params.get("sort", "health")
    sort = sort if sort in fleet.SORT_KEYS else "health"
    desc = params.get("dir", "asc") == "desc"
    page = max(1, as_int(params.get("page")) or 1)
    rows = fleet.sort_rows(fleet.device_rows(conn, now_ms, **filters), sort, desc)  # type: ignore[arg-type]
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    return {
        "filters": filters,
        "sort": sort,
        "desc": desc,
        "page": page,
        "total": len(rows),
        "rows": shown,
        "pages": max(1, (len(rows) + PAGE_SIZE - 1) // PAGE_SIZE),
        "choices": fleet.filter_choices(conn),
    }


def device(conn: Connection, device_id: str, now_ms: int) -> dict[str, Any] | None:
    if not DEVICE_RE.match(device_id):
        return None
    return fleet.device_detail(conn, device_id, now_ms)


def events(conn: Connection, params: dict[str, str]) -> dict[str, Any]:
    kind = params.get("kind", "")
    kind = kind if kind in ops.KINDS else ""
    village = as_int(params.get("village"))
    device = params.get("device", "") if DEVICE_RE.match(params.get("device", "")) else ""
    since, until = params.get("since", "")[:16], params.get("until", "")[:16]
    filters = {"kind": kind, "village": village, "device": device, "since": since, "until": until}
    since_ms, until_ms = parse_local(since), parse_local(until)
    if until_ms is not None and len(until) == 10:
        until_ms += 86_400_000  # a date means "through the end of that day"
    limit = min(500, max(1, as_int(params.get("limit")) or 100))
    rows, total = ops.list_events(
        conn,
        kind=kind,
        village=village,
        device=device,
        since_ms=since_ms,
        until_ms=until_ms,
        before_id=as_int(params.get("before")),
        limit=limit,
    )
    return {
        "filters": filters,
        "rows": rows,
        "total": total,
        "limit": limit,
        "choices": fleet.filter_choices(conn),
        "kinds": ops.KINDS,
    }


def alerts(conn: Connection, params: dict[str, str], now_ms: int) -> dict[str, Any]:
    status = params.get("status", "")
    status = status if status in ("open", "closed") else ""
    group = params.get("group", "")[:32]
    return {
        "filters": {"status": status, "group": group},
        "alerts": ops.list_alerts(conn, status=status, group=group),
        # Issue 21: each alarm's maintenance window and snooze; the recovery notices of the day.
        "alarms": maintenance.decorate_alarms(
            conn, ops.list_alarms(conn, include_cleared_since_ms=now_ms - 86_400_000), now_ms
        ),
        "notices": maintenance.recent_notices(conn, now_ms - 86_400_000),
    }


def groups(conn: Connection) -> dict[str, Any]:
    return {"groups": ops.list_groups(conn)}


def group(conn: Connection, group_id: str) -> dict[str, Any] | None:
    found = [g for g in ops.list_groups(conn) if g["id"] == group_id]
    if not found:
        return None
    return {
        "group": found[0],
        "members": ops.group_members(conn, group_id),
        "alerts": ops.list_alerts(conn, group=group_id, limit=50),
    }


def forward(conn: Connection, now_ms: int) -> dict[str, Any]:
    return forwarding.overview(conn, now_ms)

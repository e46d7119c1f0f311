"""The audit log viewer (issue 21): filters, pages, and a CSV export for Excel.

Admins only: the log names every operator's logins with their addresses and
what each did, which is the oversight of the console, not its daily work
(operators see their own actions' outcomes on the pages they act on).

CSV: UTF-8 with a byte-order mark, because Excel in China opens a CSV without
one as GBK and shows the names as mojibake; and a cell beginning with ``=``,
``+``, ``-``, ``@`` (or a tab / carriage return / line feed; also behind spaces,
and their full-width forms ＝＋－＠) gets a leading apostrophe, so
a detail written by a device or an attacker ("=HYPERLINK(…)") is text in
Excel, never a formula (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import ColumnElement, Connection, func, select

from hub.console import views
from hub.console.context import Viewer, ctx_of, translator
from hub.console.i18n import TZ, parse_local
from hub.console.tables import console_audit

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 100
CSV_MAX_ROWS = 200_000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
# Excel in a CJK locale takes the full-width forms as the ASCII ones (＝SUM(…) is a formula).
FULL_WIDTH_START = ("\uff1d", "\uff0b", "\uff0d", "\uff20")
BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class AuditFilter:
    user: str = ""
    action: str = ""
    target: str = ""
    text: str = ""
    since: str = ""  # 'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM', county time
    until: str = ""

    @classmethod
    def parse(cls, params: Any) -> AuditFilter:
        return cls(
            user=str(params.get("user", ""))[:32].strip(),
            action=str(params.get("action", ""))[:24].strip(),
            target=str(params.get("target", ""))[:64].strip(),
            text=str(params.get("text", ""))[:100].strip(),
            since=str(params.get("since", ""))[:16],
            until=str(params.get("until", ""))[:16],
        )

    def params(self) -> dict[str, str]:
        fields = ("user", "action", "target", "text", "since", "until")
        return {k: getattr(self, k) for k in fields if getattr(self, k)}


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def conditions(f: AuditFilter) -> list[ColumnElement[bool]]:
    c = console_audit.c
    out: list[ColumnElement[bool]] = []
    if f.user:
        out.append(c.user_name == f.user)
    if f.action:
        out.append(c.action == f.action)
    if f.target:
        out.append(c.target.like(_like(f.target), escape="\\"))
    if f.text:
        out.append(c.detail.like(_like(f.text), escape="\\"))
    since_ms, until_ms = parse_local(f.since), parse_local(f.until)
    if since_ms is not None:
        out.append(c.at_ms >= since_ms)
    if until_ms is not None:
        out.append(c.at_ms < until_ms + (86_400_000 if len(f.until) == 10 else 60_000))  # through that day / minute
    return out


def page(conn: Connection, f: AuditFilter, number: int) -> dict[str, Any]:
    conds = conditions(f)
    total = int(conn.execute(select(func.count()).select_from(console_audit).where(*conds)).scalar_one())
    pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
    number = min(max(1, number), pages)
    rows = conn.execute(
        select(console_audit)
        .where(*conds)
        .order_by(console_audit.c.id.desc())
        .limit(PAGE_SIZE)
        .offset((number - 1) * PAGE_SIZE)
    ).mappings()
    actions = conn.execute(select(console_audit.c.action).distinct().order_by(console_audit.c.action)).scalars()
    return {"rows": [dict(r) for r in rows], "total": total, "page": number, "pages": pages, "actions": list(actions)}


def _iso(ms: int) -> str:
    # With the year (the pages' fmt_time leaves it out): an export outlives the year it was made in.
    return datetime.fromtimestamp(ms / 1000, TZ).strftime("%Y-%m-%d %H:%M:%S")


def safe_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # Spaces before the sign do not make it text to every spreadsheet; look past them too.
    head = text.lstrip(" \u3000")
    risky = text.startswith(FORMULA_START) or head.startswith(FORMULA_START + FULL_WIDTH_START)
    return "'" + text if risky else text


def csv_lines(conn: Connection, f: AuditFilter) -> Iterator[str]:
    """The filtered log, oldest first, as CSV text chunks (the first starts with the BOM)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["id", "time (Asia/Shanghai)", "at_ms", "user", "action", "target", "detail"])
    yield BOM + buf.getvalue()
    query = select(console_audit).where(*conditions(f)).order_by(console_audit.c.id).limit(CSV_MAX_ROWS)
    for r in conn.execute(query).mappings():
        buf.seek(0)
        buf.truncate()
        writer.writerow(
            [r["id"], _iso(r["at_ms"]), r["at_ms"]]
            + [safe_cell(r[k]) for k in ("user_name", "action", "target", "detail")]
        )
        yield buf.getvalue()


def _forbidden(request: Request) -> Response:
    message = translator(request)("err.forbidden")
    return request.app.state.renderer.page(request, "error.html", {"message": message}, 403)  # type: ignore[no-any-return]


@router.get("/audit")
def audit_page(request: Request, user: Viewer) -> Response:
    if not user.can("admin"):
        return _forbidden(request)
    f = AuditFilter.parse(request.query_params)
    number = views.as_int(request.query_params.get("page")) or 1
    with ctx_of(request).engine.connect() as conn:
        data = page(conn, f, number)
    return request.app.state.renderer.page(  # type: ignore[no-any-return]
        request, "audit.html", {"nav": "audit", "filters": f.params(), **data}
    )


@router.get("/audit.csv")
def audit_csv(request: Request, user: Viewer) -> Response:
    if not user.can("admin"):
        return _forbidden(request)
    f = AuditFilter.parse(request.query_params)
    engine = ctx_of(request).engine

    def body() -> Iterator[bytes]:
        with engine.connect() as conn:
            for chunk in csv_lines(conn, f):
                yield chunk.encode("utf-8")

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="xl-audit.csv"'},
    )

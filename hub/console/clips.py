"""Event clips in the console (docs/clips.md): play, timeline, "fetch clip" with progress.

The console reads clips through ``ClipSource`` (``hub.console.clip_source``),
a small port whose real side (``HubClips``) calls ``hub.clips``: the index
and files, ``request_clip``, ``clip_status``. Nothing here touches the clip
store's tables or files directly.

Routes:
- ``GET /clips/<device>/<event>.mp4`` — the stored clip, for any logged-in
  role, or without a login for a signed, unexpired link the webhook sent
  (``?exp=&sig=``, hub/forward/clip_links.py; each request audited), with
  HTTP Range (``hub.updates.ranges``) so ``<video>`` can seek;
- ``GET /api/clips/<device>/<event>`` — the fetch's progress, polled by the page;
- ``POST /events/<row>/clip`` — "fetch clip": operators, CSRF-checked, audited.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy import select

from hub.console import auth
from hub.console.clip_source import ACTIVE, ClipRequestError, ClipSource
from hub.console.context import NotLoggedIn, Operator, Viewer, ctx_of, current_user
from hub.db.schema_ops import events
from hub.forward.clip_links import clip_path, link_valid
from hub.updates.ranges import Part, Unsatisfiable, choose
from protocol.ids import EVENT_ID_MAX, is_device_id

router = APIRouter(include_in_schema=False)
log = logging.getLogger("xl.hub.console")
CHUNK = 64 * 1024
SIGNED_LINK = "signed link"  # the audit's "who" for a request made with a webhook's clip link


def clip_url(device_id: str, event_id: int) -> str:
    return clip_path(device_id, event_id)


def for_event(source: ClipSource | None, device_id: str, event_id: int, time_ms: int) -> dict[str, Any] | None:
    """What the event page shows of the visit's clip: None when the hub keeps no clips.

    Detection times become seconds into the clip (the video's currentTime),
    and percentages along the timeline; a clip without its own times starts at
    its first detection, or at the event."""
    if source is None:
        return None
    info = source.info(device_id, event_id)
    if info is None:
        return {"stored": False, "progress": asdict(source.progress(device_id, event_id)), "active": ACTIVE}
    start = info.start_ms if info.start_ms is not None else min([d[0] for d in info.detections] or [time_ms])
    end = info.end_ms if info.end_ms is not None and info.end_ms > start else None
    span = (end - start) if end is not None else max([d[0] - start for d in info.detections] or [0]) + 1000
    marks = [
        {
            "t": round((d[0] - start) / 1000, 3),
            "pct": round(min(100.0, max(0.0, 100 * (d[0] - start) / span)), 2),
            "score": d[1],
            "box": d[2:],
        }
        for d in info.detections
    ]
    return {
        "stored": True,
        "url": clip_url(device_id, event_id),
        "bytes": info.bytes,
        "start_ms": start,
        "duration_s": round(span / 1000, 3),
        "marks": marks,
    }


def _ids(device_id: str, event_id: int) -> bool:
    return is_device_id(device_id) and 0 <= event_id <= EVENT_ID_MAX


def _source(request: Request) -> ClipSource | None:
    return ctx_of(request).clips


@router.get("/clips/{device_id}/{event_id}.mp4")
def clip_file(request: Request, device_id: str, event_id: int) -> Response:
    """The clip for a logged-in operator, or for the holder of a signed link the webhook sent.

    A signed link (``?exp=&sig=``, hub/forward/clip_links.py) is checked before
    anything is looked up, so a bad or expired one is 403 whether the clip
    exists or not; a good one is served without a login, and every request
    made with it is audited as ``signed link`` with the remote address."""
    query = request.query_params
    try:
        current_user(request)
        return _serve(request, device_id, event_id)
    except NotLoggedIn:
        if "sig" not in query and "exp" not in query:
            raise  # no link either: to the login page, as for every page
    key = ctx_of(request).clip_link_key
    exp, sig = query.get("exp"), query.get("sig")
    remote = request.client.host if request.client else "?"
    if key is None or not link_valid(key, clip_path(device_id, event_id), exp, sig, time.time()):
        log.info("clip link refused for %s/%s from %s", device_id[:20], event_id, remote)
        return Response(status_code=403)
    resp = _serve(request, device_id, event_id)
    shown = (request.headers.get("range") or "all")[:40]
    with ctx_of(request).engine.begin() as conn:
        detail = f"event {event_id} HTTP {resp.status_code} bytes={shown} from {remote} exp={exp}"
        auth.audit(conn, SIGNED_LINK, "clip_link", device_id, detail)
    resp.headers["Referrer-Policy"] = "no-referrer"  # the link is the permission: it must not leak onward
    return resp


def _serve(request: Request, device_id: str, event_id: int) -> Response:
    source = _source(request)
    path = source.file(device_id, event_id) if source is not None and _ids(device_id, event_id) else None
    if path is None:
        return Response(status_code=404)
    size = path.stat().st_size
    # Video of people's yards: this browser only, never a shared cache.
    headers = {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
    choice = choose(request.headers.get("range"), size)
    if isinstance(choice, Unsatisfiable):
        return Response(status_code=416, headers={"Content-Range": f"bytes */{size}", **headers})
    start, end, status = 0, size - 1, 200
    if isinstance(choice, Part):
        start, end, status = choice.start, choice.end, 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(_read(path, start, end), status_code=status, media_type="video/mp4", headers=headers)


def _read(path: Path, start: int, end: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = f.read(min(CHUNK, left))
            if not chunk:
                return  # retention removed it mid-send: the browser sees a short body and asks again
            left -= len(chunk)
            yield chunk


@router.get("/api/clips/{device_id}/{event_id}")
def clip_progress(request: Request, device_id: str, event_id: int, _u: Viewer) -> Response:
    source = _source(request)
    if source is None or not _ids(device_id, event_id):
        return JSONResponse({"detail": "no clips here"}, status_code=404)
    return JSONResponse(asdict(source.progress(device_id, event_id)))


@router.post("/events/{row_id}/clip")
def fetch_clip(request: Request, row_id: int, user: Operator) -> Response:
    ctx = ctx_of(request)
    with ctx.engine.connect() as conn:
        row = conn.execute(select(events.c.device_id, events.c.event_id).where(events.c.id == row_id)).first()
    source = _source(request)
    if row is None or source is None:
        return Response(status_code=404)
    here = f"/events/{row_id}"
    try:
        command_id = source.request(row.device_id, int(row.event_id))
    except ClipRequestError as exc:
        from urllib.parse import urlencode

        return RedirectResponse(f"{here}?{urlencode({'notice': 'clip_failed', 'err': str(exc)[:200]})}", 303)
    with ctx.engine.begin() as conn:
        auth.audit(conn, user.name, "clip_fetch", row.device_id, f"event {row.event_id} cmd={command_id}")
    return RedirectResponse(f"{here}?notice=clip_requested", status_code=303)

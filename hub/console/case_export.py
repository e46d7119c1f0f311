"""Export for a case (issue 21): one event as a zip a police officer can take away and check.

The zip holds the event's rows (every phase of the visit), its snapshot JPEGs,
the clip MP4 when the hub keeps it, a ``manifest.json`` (the device, the
household, the village, the times, what each file is, its size and SHA-256,
who exported it and when) and ``SHA256SUMS`` over every other file (the
format ``sha256sum -c`` reads), so the copy can be verified without this hub.
The manifest's own SHA-256 goes into the console's audit row: a manifest
shown later can be matched to the export that made it.

Household phone and coordinates are left out: a case needs the footage and
where it came from, not more personal information than that.

Operators and admins (the same role that fetches clips). The zip is built in a
temporary file (a clip can be tens of MB) and streamed from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import zipfile
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import Connection, select

from hub.console import auth
from hub.console.context import Operator, ctx_of
from hub.console.i18n import TZ
from hub.db.schema import devices, households, townships, villages
from hub.db.schema_ops import events, snapshots

router = APIRouter(include_in_schema=False)

FORMAT = "xueliang-case/1"
CHUNK = 64 * 1024


def _iso(ms: int | None) -> str | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, TZ).isoformat(timespec="milliseconds")


def gather(conn: Connection, row_id: int) -> dict[str, Any] | None:
    """The event's phases, pictures and place; None when there is no such event row."""
    first = conn.execute(select(events.c.device_id, events.c.event_id).where(events.c.id == row_id)).first()
    if first is None:
        return None
    device_id, event_id = str(first.device_id), int(first.event_id)
    phases = conn.execute(
        select(events)
        .where(events.c.device_id == device_id, events.c.event_id == event_id)
        .order_by(events.c.time_ms, events.c.id)
    ).mappings()
    pictures = conn.execute(
        select(snapshots)
        .where(snapshots.c.device_id == device_id, snapshots.c.event_id == event_id)
        .order_by(snapshots.c.id)
    ).mappings()
    place = (
        conn.execute(
            select(
                devices.c.id.label("device_id"),
                devices.c.household_id,
                households.c.name.label("household_name"),
                households.c.group_id,
                villages.c.id.label("village_id"),
                villages.c.name.label("village"),
                townships.c.code.label("township_code"),
                townships.c.name.label("township"),
            )
            .join(households, households.c.id == devices.c.household_id)
            .join(villages, villages.c.id == households.c.village_id)
            .join(townships, townships.c.code == villages.c.township_code)
            .where(devices.c.id == device_id)
        )
        .mappings()
        .first()
    )
    return {
        "device_id": device_id,
        "event_id": event_id,
        "phases": [dict(p) for p in phases],
        "pictures": [dict(p) for p in pictures],
        "place": dict(place) if place is not None else {"device_id": device_id},
    }


class _Writer:
    """Adds files to the zip and remembers each one's name, size and SHA-256."""

    def __init__(self, out: IO[bytes]) -> None:
        self.zip = zipfile.ZipFile(out, "w")
        self.files: list[dict[str, Any]] = []

    def add(self, name: str, data: bytes, what: str, media_type: str, **extra: Any) -> None:
        # JPEG and MP4 are compressed already: stored as they are; JSON and text are deflated.
        method = zipfile.ZIP_STORED if media_type in ("image/jpeg", "video/mp4") else zipfile.ZIP_DEFLATED
        self.zip.writestr(name, data, compress_type=method)
        self.files.append(
            {
                "name": name,
                "what": what,
                "media_type": media_type,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                **extra,
            }
        )

    def add_file(self, name: str, src: IO[bytes], what: str, media_type: str) -> None:
        digest, size = hashlib.sha256(), 0
        with src, self.zip.open(name, "w", force_zip64=True) as dst:
            while block := src.read(CHUNK):
                digest.update(block)
                size += len(block)
                dst.write(block)
        self.files.append(
            {"name": name, "what": what, "media_type": media_type, "bytes": size, "sha256": digest.hexdigest()}
        )


def build(out: IO[bytes], case: dict[str, Any], clip_path: Any, user: str, now_ms: int) -> tuple[str, bool]:
    """Write the case zip to ``out``; the manifest's SHA-256, and whether the clip is in it."""
    clip: IO[bytes] | None = None
    if clip_path is not None:
        # Deleted since the index offered it (retention, a disk swapped): the case without it.
        with contextlib.suppress(FileNotFoundError):
            clip = open(clip_path, "rb")  # noqa: SIM115 - closed by add_file
    w = _Writer(out)
    rows = [{k: v for k, v in p.items()} for p in case["phases"]]
    w.add(
        "event.json", _json(rows), "the event's stored rows, every phase of the visit, oldest first", "application/json"
    )
    for pic in case["pictures"]:
        jpeg = bytes(pic["jpeg"])
        w.add(
            f"snapshots/{pic['phase']}-{pic['id']}.jpg",
            jpeg,
            f"snapshot of phase {pic['phase']} as the device sent it",
            "image/jpeg",
            phase=pic["phase"],
            device_time_ms=pic["device_time_ms"],
            received_ms=pic["received_ms"],
            width=pic["width"],
            height=pic["height"],
        )
    if clip is not None:
        w.add_file(f"clip/{case['event_id']}.mp4", clip, "the video clip the device uploaded", "video/mp4")
    times = [int(p["time_ms"]) for p in case["phases"]]
    manifest = {
        "format": FORMAT,
        "exported_by": user,
        "exported_ms": now_ms,
        "exported_at": _iso(now_ms),
        "place": case["place"],
        "event": {
            "device_id": case["device_id"],
            "event_id": case["event_id"],
            "kind": case["phases"][0]["kind"] if case["phases"] else None,
            "phases": [p["phase"] for p in case["phases"]],
            "first_ms": min(times) if times else None,
            "last_ms": max(times) if times else None,
            "first_at": _iso(min(times)) if times else None,
            "last_at": _iso(max(times)) if times else None,
            "clip": clip is not None,
        },
        "timezone": "Asia/Shanghai (times in *_ms are UTC epoch milliseconds)",
        "files": w.files,
    }
    data = _json(manifest)
    manifest_sha = hashlib.sha256(data).hexdigest()
    w.zip.writestr("manifest.json", data, compress_type=zipfile.ZIP_DEFLATED)
    sums = "".join(f"{f['sha256']}  {f['name']}\n" for f in w.files) + f"{manifest_sha}  manifest.json\n"
    w.zip.writestr("SHA256SUMS", sums.encode("ascii"), compress_type=zipfile.ZIP_DEFLATED)
    w.zip.close()
    return manifest_sha, clip is not None


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=_plain).encode("utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | memoryview):
        return None  # the picture bytes are files of their own
    return str(value)


def _stream(f: IO[bytes]) -> Iterator[bytes]:
    try:
        f.seek(0)
        while block := f.read(CHUNK):
            yield block
    finally:
        f.close()


@router.get("/events/{row_id}/case.zip")
def case_zip(request: Request, row_id: int, user: Operator) -> Response:
    import time

    ctx = ctx_of(request)
    with ctx.engine.connect() as conn:
        case = gather(conn, row_id)
    if case is None:
        return Response(status_code=404)
    clip = None if ctx.clips is None else ctx.clips.file(case["device_id"], case["event_id"])
    out = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _stream once sent, or below on failure
    try:
        manifest_sha, with_clip = build(out, case, clip, user.name, int(time.time() * 1000))
    except BaseException:
        out.close()
        raise
    size = out.tell()
    with ctx.engine.begin() as conn:
        auth.audit(
            conn,
            user.name,
            "case_export",
            case["device_id"],
            f"event {case['event_id']} files={len(case['pictures']) + 2 + with_clip} manifest sha256={manifest_sha}",
        )
    name = f"case-{case['device_id']}-{case['event_id']}.zip"
    return StreamingResponse(
        _stream(out),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Content-Length": str(size)},
    )

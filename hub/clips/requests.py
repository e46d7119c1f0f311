""" "Fetch clip" for the console: ask the device for an event's clip, and how far it got.

``request_clip`` sends the ``clip`` command and records the request;
``clip_status`` answers the console's progress bar from the index, the
partial file's size (no database write per chunk) and the command's ack (a
device that no longer has the clip says so there).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, select

from hub.clips.files import files_of, read_declared
from hub.clips.tables import clip_requests, clips
from hub.commands import Publisher, send_command
from hub.db.dialect import upsert_insert
from hub.db.schema_ops import commands


@dataclass(frozen=True, slots=True)
class ClipStatus:
    state: str  # none | requested | uploading | stored | refused (the device's ack said why: error)
    received: int  # bytes the hub has
    total: int | None  # the clip's size, once the device has said it
    error: str | None = None


def request_clip(engine: Engine, publisher: Publisher, device_id: str, event_id: int) -> str:
    """Send ``clip`` to the device and record the request; returns the command id.

    Raises hub.commands.CommandError for an unknown or revoked device, and
    protocol.ProtocolError for an event id out of range."""
    command_id = send_command(engine, publisher, device_id, "clip", {"id": event_id})
    with engine.begin() as conn:
        ins = upsert_insert(conn, clip_requests)
        values = {
            "requested_ms": int(time.time() * 1000),
            "command_id": command_id,
            "state": "requested",
            "received_bytes": 0,
            "total_bytes": None,
        }
        conn.execute(
            ins.values(device_id=device_id, event_id=event_id, **values).on_conflict_do_update(
                index_elements=["device_id", "event_id"], set_=values
            )
        )
    return command_id


def clip_status(engine: Engine, root: str | Path, device_id: str, event_id: int) -> ClipStatus:
    with engine.connect() as conn:
        size = conn.execute(
            select(clips.c.bytes).where(clips.c.device_id == device_id, clips.c.event_id == event_id)
        ).scalar()
        if size is not None:
            return ClipStatus("stored", int(size), int(size))
        req = conn.execute(
            select(clip_requests.c.command_id, commands.c.ok, commands.c.error)
            .select_from(clip_requests.outerjoin(commands, commands.c.id == clip_requests.c.command_id))
            .where(clip_requests.c.device_id == device_id, clip_requests.c.event_id == event_id)
        ).first()
    try:
        f = files_of(Path(root), device_id, event_id)
    except ValueError:
        return ClipStatus("none", 0, None)
    declared = read_declared(f.meta)
    if declared is not None and f.part.exists():
        return ClipStatus("uploading", f.part.stat().st_size, declared.length)
    if req is None:
        return ClipStatus("none", 0, None)
    if req.ok is False:
        return ClipStatus("refused", 0, None, req.error)
    return ClipStatus("requested", 0, None)

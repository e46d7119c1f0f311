"""Where clips live on the hub's disk: ``<clips.path>/<device>/<event id>.mp4``.

An upload in progress is ``<event id>.part`` with a sidecar ``<event id>.meta.json``
(the length and sha256 the device declared, and its times); the sidecar goes
last, after the index row is written, so a hub that dies between rename and
row finishes the job on the next request instead of losing the clip.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from hub.clips.tables import clips
from protocol.ids import EVENT_ID_MAX, is_device_id


@dataclass(frozen=True, slots=True)
class Declared:
    """What the device's PATCH headers say the whole clip is."""

    length: int
    sha256: str
    start_ms: int | None = None
    end_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ClipFiles:
    final: Path
    part: Path
    meta: Path


def files_of(root: Path, device_id: str, event_id: int) -> ClipFiles:
    """Names are built from a checked device id and an integer, never from the request's text."""
    if not is_device_id(device_id) or not 0 <= event_id <= EVENT_ID_MAX:
        raise ValueError(f"no clip path for {device_id!r}/{event_id!r}")
    folder = root / device_id
    return ClipFiles(folder / f"{event_id}.mp4", folder / f"{event_id}.part", folder / f"{event_id}.meta.json")


def read_declared(path: Path) -> Declared | None:
    try:
        doc: Any = json.loads(path.read_text(encoding="utf-8"))
        return Declared(int(doc["length"]), str(doc["sha256"]), doc.get("start_ms"), doc.get("end_ms"))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or torn: the partial is started over


def write_declared(path: Path, declared: Declared) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(declared)), encoding="utf-8")
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_partial(f: ClipFiles) -> None:
    for p in (f.part, f.meta):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def open_clip(engine: Engine, root: str | Path, device_id: str, event_id: int) -> Path | None:
    """The stored clip's file for the console to serve (with HTTP Range), or None.

    Only clips in the index: a file still being renamed into place, or one
    retention is deleting, is not offered."""
    try:
        f = files_of(Path(root), device_id, event_id)
    except ValueError:
        return None
    with engine.connect() as conn:
        row = conn.execute(
            select(clips.c.bytes).where(clips.c.device_id == device_id, clips.c.event_id == event_id)
        ).first()
    if row is None or not f.final.is_file():
        return None
    return f.final

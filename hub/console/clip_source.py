"""The console's port to the clip store (``ClipSource``) and its real side over ``hub.clips``.

Apart from the routes (``hub.console.clips``) so that ``ConsoleContext`` can
hold a source without an import circle. ``hub.clips`` is imported inside
``HubClips``' methods: a hub that keeps no clips never loads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, select

from hub.commands import Publisher


@dataclass(frozen=True, slots=True)
class ClipInfo:
    bytes: int
    start_ms: int | None
    end_ms: int | None
    detections: list[list[int]]  # [t_ms, score, x1, y1, x2, y2 (permille)], as the device sent them


@dataclass(frozen=True, slots=True)
class Progress:
    state: str  # none | requested | uploading | stored | refused
    received: int
    total: int | None
    error: str | None = None


class ClipSource(Protocol):
    def info(self, device_id: str, event_id: int) -> ClipInfo | None: ...

    def file(self, device_id: str, event_id: int) -> Path | None: ...

    def progress(self, device_id: str, event_id: int) -> Progress: ...

    def request(self, device_id: str, event_id: int) -> str:
        """Ask the device for the clip; the command id. Raises ClipRequestError."""
        ...


# Still moving: the page keeps polling. stored / refused / none end it.
ACTIVE = ("requested", "uploading")


class ClipRequestError(Exception):
    pass


class HubClips:
    """``ClipSource`` over hub.clips: the clip index and files under ``root``, commands on ``publisher``."""

    def __init__(self, engine: Engine, root: str | Path, publisher: Publisher) -> None:
        self.engine, self.root, self.publisher = engine, Path(root), publisher

    def info(self, device_id: str, event_id: int) -> ClipInfo | None:
        from hub.clips.tables import clips

        with self.engine.connect() as conn:
            row = conn.execute(
                select(clips.c.bytes, clips.c.start_ms, clips.c.end_ms, clips.c.detections).where(
                    clips.c.device_id == device_id, clips.c.event_id == event_id
                )
            ).first()
        if row is None:
            return None
        return ClipInfo(int(row.bytes), row.start_ms, row.end_ms, _detections(row.detections))

    def file(self, device_id: str, event_id: int) -> Path | None:
        from hub.clips.files import open_clip

        return open_clip(self.engine, self.root, device_id, event_id)

    def progress(self, device_id: str, event_id: int) -> Progress:
        from hub.clips.requests import clip_status

        s = clip_status(self.engine, self.root, device_id, event_id)
        return Progress(s.state, s.received, s.total, s.error)

    def request(self, device_id: str, event_id: int) -> str:
        from hub.clips.requests import request_clip
        from hub.commands import CommandError
        from protocol.errors import ProtocolError

        if not self.publisher.is_connected():
            raise ClipRequestError("not connected to the MQTT broker")
        try:
            return request_clip(self.engine, self.publisher, device_id, event_id)
        except (CommandError, ProtocolError) as exc:
            raise ClipRequestError(str(exc)) from exc


def _detections(value: Any) -> list[list[int]]:
    """The stored detections, kept only where they are six numbers (the page draws them)."""
    out = []
    for d in value or ():
        if isinstance(d, (list, tuple)) and len(d) == 6 and all(isinstance(v, (int, float)) for v in d):
            out.append([int(v) for v in d])
    return out

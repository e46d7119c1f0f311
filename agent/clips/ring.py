"""The ring: the last ``ring_s`` seconds of encoded video as segment files on the SD card.

Each segment starts with a keyframe and is written as raw H.264 Annex B to
``<boot>-<seq>.h264.part``; when the next keyframe arrives it is closed, its
sidecar (``<boot>-<seq>.json``: frame times, count, bytes, wall time) is
written beside it and the ``.part`` is renamed. So a complete name always
means a complete segment, and a clip is only ever cut from complete ones.

Nothing here is fsynced: a power cut loses the ring anyway, because a segment
means nothing without the visit whose clip it was waiting for (visits do not
survive a restart) and the ring is emptied at start. Syncing a 2 s file every
2 s would only wear the SD card.

While a visit is open its segments are held (``hold``) beyond ``ring_s``, so
a long visit still gets its start, up to ``MAX_HOLD_S``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from agent.clips.encoder import EncodedFrame

log = logging.getLogger(__name__)

MAX_HOLD_S = 600.0  # a visit longer than this loses its beginning rather than fill the card


@dataclass
class Segment:
    path: Path  # the .h264 file (or its .part while open)
    seq: int
    wall_ms: int  # wall-clock time of the first frame
    ts: list[float] = field(default_factory=list)  # source time of every frame
    bytes: int = 0

    @property
    def first(self) -> float:
        return self.ts[0]

    @property
    def last(self) -> float:
        return self.ts[-1]

    def sidecar(self) -> dict[str, object]:
        return {
            "first": self.first,
            "last": self.last,
            "frames": len(self.ts),
            "bytes": self.bytes,
            "wall_ms": self.wall_ms,
            "ts": [round(t, 4) for t in self.ts],
        }


class Ring:
    def __init__(self, directory: Path, boot: int, ring_s: float) -> None:
        self.dir = directory
        self.boot = boot
        self.ring_s = ring_s
        self.segments: list[Segment] = []  # closed, oldest first
        self.hold: float | None = None  # keep segments whose frames reach back to this source time
        self._open: Segment | None = None
        self._file: BinaryIO | None = None
        self._seq = 0
        self.dir.mkdir(parents=True, exist_ok=True)
        self.clear_disk()

    def clear_disk(self) -> None:
        """Remove every file of the ring (earlier boots, ``.part`` files of a power cut)."""
        for path in self.dir.iterdir():
            try:
                path.unlink()
            except OSError as exc:
                log.warning("ring: cannot remove %s: %s", path, exc)

    @property
    def open_segment(self) -> Segment | None:
        return self._open

    def add(self, frame: EncodedFrame, wall_ms: int) -> Segment | None:
        """Append one access unit; returns the segment a keyframe closed, if any."""
        closed = None
        if frame.key and self._open is not None and self._open.ts:
            closed = self.close_open()
        if self._open is None:
            if not frame.key:
                return closed  # a segment must start with a keyframe: wait for one
            self._seq += 1
            name = f"{self.boot}-{self._seq:06d}.h264"
            self._open = Segment(self.dir / name, self._seq, wall_ms)
            self._file = open(self.dir / (name + ".part"), "wb")  # noqa: SIM115  # closed in close_open
        assert self._file is not None
        self._file.write(frame.data)
        self._open.ts.append(frame.ts)
        self._open.bytes += len(frame.data)
        return closed

    def close_open(self) -> Segment | None:
        """Complete the segment being written (a keyframe came, or the stream ended)."""
        seg, f = self._open, self._file
        self._open, self._file = None, None
        if seg is None or f is None:
            return None
        f.close()
        part = seg.path.with_name(seg.path.name + ".part")
        if not seg.ts:
            part.unlink(missing_ok=True)
            return None
        os.replace(part, seg.path)
        sidecar = seg.path.with_suffix(".json")
        tmp = sidecar.with_name(sidecar.name + ".part")
        tmp.write_text(json.dumps(seg.sidecar(), separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, sidecar)
        self.segments.append(seg)
        self._evict()
        return seg

    def _evict(self) -> None:
        while self.segments:
            oldest = self.segments[0]
            newest = self.segments[-1].last
            if newest - oldest.last <= self.ring_s:
                break
            held = self.hold is not None and oldest.last >= self.hold and newest - oldest.last <= MAX_HOLD_S
            if held:
                break
            self._drop(self.segments.pop(0))

    def _drop(self, seg: Segment) -> None:
        for path in (seg.path, seg.path.with_suffix(".json")):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("ring: cannot remove %s: %s", path, exc)

    def covering(self, start: float, end: float) -> list[Segment]:
        """The closed segments with a frame in [start, end]: whole segments, so the cut is at keyframes."""
        return [s for s in self.segments if s.last >= start and s.first <= end]

    def reset(self) -> None:
        """A new stream (a file replayed from the start): its times begin again, so the old segments go."""
        self.close_open()
        for seg in self.segments:
            self._drop(seg)
        self.segments.clear()
        self.hold = None

    @property
    def closed_until(self) -> float | None:
        """Source time of the newest frame in a closed segment."""
        return self.segments[-1].last if self.segments else None

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.segments) + (self._open.bytes if self._open else 0)

"""Ring segments → one MP4, remuxed without re-encoding.

Each segment is demuxed on its own (each starts with SPS/PPS and an IDR), so a
long clip is streamed segment by segment and never held in memory. Packet
times come from the sidecars' frame times rather than from a frame rate: a
camera that dropped a frame stays in step with the detections' timeline.
The MP4 is written as ``<id>.mp4.tmp``, fsynced and renamed, with the index
(``moov``) in front (``+faststart``) so a browser starts playing at once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from agent.clips.ring import Segment

MS = Fraction(1, 1000)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remux(
    segments: Sequence[Segment],
    dest: Path,
    fps: float,
    crashpoint: Callable[[str], None] = lambda _name: None,
) -> tuple[int, str, int]:
    """Write ``dest`` from ``segments``; returns (bytes, sha256 hex, frames)."""
    if not segments:
        raise ValueError("no segments to cut a clip from")
    tmp = dest.with_name(dest.name + ".tmp")
    try:
        frames = _write(segments, tmp, fps, crashpoint)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full card: free what the half clip took (the repair would, at start)
        raise
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    crashpoint("remux-before-rename")
    os.replace(tmp, dest)
    fsync_dir(dest.parent)
    return dest.stat().st_size, sha256_of(dest), frames


def _write(segments: Sequence[Segment], tmp: Path, fps: float, crashpoint: Callable[[str], None]) -> int:
    import av

    t0 = segments[0].first
    frame_ms = max(1, round(1000 / fps))
    frames = 0
    last_pts = -1
    out: Any = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
    try:
        ost: Any = None
        for seg in segments:
            with av.open(str(seg.path), format="h264") as inp:
                ist = inp.streams.video[0]
                if ost is None:
                    ost = out.add_stream_from_template(ist)
                    ost.time_base = MS
                for i, packet in enumerate(p for p in inp.demux(ist) if p.size):
                    ts = seg.ts[i] if i < len(seg.ts) else seg.last + (i - len(seg.ts) + 1) / fps
                    pts = max(round((ts - t0) * 1000), last_pts + 1)
                    packet.stream = ost
                    packet.time_base = MS
                    packet.pts = packet.dts = last_pts = pts
                    packet.duration = frame_ms
                    out.mux(packet)
                    frames += 1
            crashpoint("remux-segment")
    finally:
        out.close()
    return frames


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()

"""Real H.264 MP4 clips as the hub stores them, for the console and forwarding tests, made with PyAV.

The encoding is the agent's own (``agent.clips.encoder.X264_OPTIONS``: libx264,
zerolatency, Constrained Baseline, yuv420p; +faststart; docs/clips.md) so Chromium
plays what a device would upload. A bright square moves across the frames, so
nothing about the picture is constant."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from agent.clips.encoder import X264_OPTIONS


def make_mp4(path: Path, seconds: float = 4.0, *, fps: int = 5, width: int = 640, height: int = 360) -> bytes:
    """Write an MP4 of ``seconds`` at ``fps`` to ``path``; returns its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = max(1, round(seconds * fps))
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {**X264_OPTIONS, "g": str(fps * 4)}  # a keyframe per 4 s, as the ring's segments
        for i in range(frames):
            rgb = np.full((height, width, 3), (40, 60, 90), np.uint8)
            x = int((width - 80) * i / max(1, frames - 1))
            rgb[height // 3 : height // 3 + 80, x : x + 80] = (230, 220, 200)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path.read_bytes()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

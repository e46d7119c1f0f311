"""Helpers for the clips tests: a recorder over a real source, visits as the pipeline emits them, MP4 decoding."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from agent.clips.recorder import Recorder
from agent.config import ClipsConfig
from agent.vision.tracker import Emitted
from protocol.messages import Event

EPOCH_MS = 1_735_689_600_000


def emitted(event_id: int, phase: str, ts: float, kind: str = "person", bbox: Any = (100, 200, 300, 900)) -> Emitted:
    event = Event(event_id=event_id, kind=kind, phase=phase, time_ms=EPOCH_MS + round(ts * 1000), score=80, bbox=bbox)
    return Emitted(event, ts, 0.8, None)


def make_recorder(state: Path, boot: int = 1, **cfg: Any) -> Recorder:
    masks = cfg.pop("masks", ())
    armed = cfg.pop("armed", False)
    rec = Recorder(
        dataclasses.replace(ClipsConfig(), **cfg),
        state,
        boot,
        masks=masks,
        armed=lambda: armed,
        wall_ms=lambda: EPOCH_MS,
    )
    rec.start()
    return rec


def feed(rec: Recorder, source: Any, visits: dict[float, list[Emitted]], limit: int | None = None) -> int:
    """Every frame of ``source`` into ``rec`` (waiting for the encoder: no drops), the visits at their times."""
    source.open()
    n = 0
    try:
        while (frame := source.read()) is not None and (limit is None or n < limit):
            if rec.offer(frame):
                assert rec.drain()
            for t in [t for t in visits if t <= frame.ts]:
                for e in visits.pop(t):
                    rec.on_event(e)
            n += 1
    finally:
        source.close()
    assert rec.drain()
    return n


def decode(path: Path) -> tuple[list[Any], float, Any]:
    """(decoded frames, container duration s, stream) of an MP4."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        frames = list(c.decode(stream))
        duration = float(c.duration) / 1_000_000 if c.duration else 0.0
        return frames, duration, stream.codec_context.profile

"""Event clips (issue 18): bytes per 10 s clip at the defaults, and what encoding costs per frame.

Figures, not a pass/fail test:

- ``clips_bytes_per_10s_<scene>``: ring bytes per 10 s of video at the
  defaults (640x360, 5 fps, 4 s segments, libx264 veryfast, Baseline, CRF 29
  capped at 500 kbit/s, one thread; bench/clip_quality.py chose them), and
  ``clips_mp4_bytes_<scene>`` one real clip of a 0 s visit at 12 s (pre 5 +
  post 5, widened to whole segments: 4-20 s) as remuxed to MP4.
- ``clips_encode_ms_*``: CPU (process time, so libx264's own threads would
  count) per clip frame for the scale to 640x360 yuv420p plus libx264, a
  keyframe per segment, against ``clips_pipeline_ms_*``, the vision
  pipeline's CPU per camera frame on the same 1280x720 frames (motion, gated
  detection with the real uint8 model). Interleaved rounds, median and range.
- ``clips_pipeline_wall_ms_{alone,recording}``: the pipeline's wall time per frame
  with and without the recorder thread encoding beside it, and the frames the
  recorder dropped: does encoding block detection?

    python bench/clips.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT, merge_results, print_table

from agent.clips.encoder import PyAvEncoder, to_yuv
from agent.config import ClipsConfig
from agent.config_vision import VisionConfig
from agent.vision.pipeline import VisionPipeline, replay_clock
from agent.vision.synthetic import SyntheticSource
from protocol.ids import EventIdGenerator
from tests.support.clip_device import emitted, feed, make_recorder

VTEST = ROOT / "var" / "clips" / "vtest.avi"


def frames_of(scene: str, seconds: float, fps: float = 10.0) -> list[Any]:
    src = SyntheticSource(scene, width=1280, height=720, fps=fps, seconds=seconds)
    src.open()
    out = []
    while (f := src.read()) is not None:
        _ = f.rgb  # rendered now: the source's cost is not the encoder's
        out.append(f)
    return out


def bytes_per_10s(source: Any, name: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        rec = make_recorder(Path(tmp))
        feed(rec, source, {12.0: [emitted(1, "start", 12.0), emitted(1, "end", 12.0)]}, limit=None)
        segs = rec.ring.segments
        seconds = (segs[-1].last - segs[0].first) + 0.2
        ring_bytes = sum(s.bytes for s in segs)
        rec.stop(close=False)
        clip = rec.store.get(1)
        rec.store.close()
    return {
        f"clips_bytes_per_10s_{name}": round(ring_bytes / seconds * 10),
        f"clips_mp4_bytes_{name}": clip.bytes if clip else None,
    }


def pipeline(detector: Any) -> VisionPipeline:
    return VisionPipeline(VisionConfig(), detector, EventIdGenerator(1), replay_clock())


def cpu_rounds(frames: list[Any], detector: Any, rounds: int) -> dict[str, Any]:
    enc_ms, pipe_ms = [], []
    for _ in range(rounds):
        p = pipeline(detector)
        t = time.thread_time()
        for f in frames:
            p.process(f)
        pipe_ms.append((time.thread_time() - t) * 1000 / len(frames))
        cfg = ClipsConfig()
        enc = PyAvEncoder(cfg.width, cfg.height, cfg.fps)
        gop = round(cfg.fps * cfg.segment_s)
        clip_frames = frames[::2]  # 5 fps of a 10 fps camera
        t = time.process_time()
        for i, f in enumerate(clip_frames):
            enc.encode(to_yuv(f.rgb, enc.width, enc.height), f.ts, i % gop == 0)
        enc.flush()
        enc_ms.append((time.process_time() - t) * 1000 / len(clip_frames))
    return {
        "clips_encode_ms_median": round(statistics.median(enc_ms), 2),
        "clips_encode_ms_range": [round(min(enc_ms), 2), round(max(enc_ms), 2)],
        "clips_pipeline_ms_median": round(statistics.median(pipe_ms), 2),
        "clips_pipeline_ms_range": [round(min(pipe_ms), 2), round(max(pipe_ms), 2)],
    }


def blocking_rounds(frames: list[Any], detector: Any, rounds: int) -> dict[str, Any]:
    alone, recording, drops = [], [], []
    for _ in range(rounds):
        p = pipeline(detector)
        t = time.perf_counter()
        for f in frames:
            p.process(f)
        alone.append((time.perf_counter() - t) * 1000 / len(frames))
        with tempfile.TemporaryDirectory() as tmp:
            rec = make_recorder(Path(tmp))
            p = pipeline(detector)
            t = time.perf_counter()
            for f in frames:  # as fast as the pipeline goes: harder than a camera's 10 fps
                p.process(f)
                rec.offer(f)
            recording.append((time.perf_counter() - t) * 1000 / len(frames))
            rec.drain()
            rec.stop()
            drops.append(rec.dropped)
    return {
        "clips_pipeline_wall_ms_alone": round(statistics.median(alone), 2),
        "clips_pipeline_wall_ms_recording": round(statistics.median(recording), 2),
        "clips_pipeline_wall_ms_recording_range": [round(min(recording), 2), round(max(recording), 2)],
        "clips_dropped_at_full_speed": drops,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from agent.vision.replay import build_detector

    detector = build_detector(VisionConfig())
    figures: dict[str, Any] = {}
    for scene in ("quiet", "walkthrough", "busy"):
        figures |= bytes_per_10s(SyntheticSource(scene, width=1280, height=720, fps=10, seconds=20), scene)
    if VTEST.is_file():
        from agent.vision.sources import VideoFileSource

        figures |= bytes_per_10s(VideoFileSource(VTEST), "vtest")
    frames = frames_of("busy", 12.0)
    figures |= cpu_rounds(frames, detector, args.rounds)
    figures |= blocking_rounds(frames, detector, max(3, args.rounds // 2))
    merge_results(figures)
    rows = [(k, v if not isinstance(v, list) else str(v), "") for k, v in figures.items()]
    print_table("clips (1280x720 10 fps camera frames -> 640x360 5 fps clips)", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

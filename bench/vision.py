"""Agent vision figures: motion vs OpenCV, inference per runtime, pipeline RTF, RSS.

Figures, not a pass/fail test. Merges into bench/results.json and prints a table:

* ``motion_ratio_vs_opencv``: our numpy motion step's time per frame over an
  OpenCV baseline of the classic steps (downscale, absdiff against a running
  average with accumulateWeighted, threshold, dilate, findContours) on the same
  luma frames of the busy scene, in the same run, at the same working size,
  threshold, learning rate and minimum area. Best of several interleaved rounds
  per side, because the machine is shared.
* ``inference_ms_*``: one model invoke (300x300 uint8) per installed runtime.
* ``pipeline_rtf``: seconds of pipeline work per second of video on the busy
  synthetic scene at 10 fps, pinned to one core, one TFLite thread. Rendering
  the synthetic frames is the camera's job on a Pi, so it is timed apart
  (``replay_rtf`` includes it).
* ``agent_rss_mb``: resident memory of a fresh process that loaded the model,
  built the pipeline and ran frames through it, as the agent imports it
  (camera port fed by a stand-in camera: no scikit-image, no OpenCV).

    .venv/bin/python bench/vision.py
"""

from __future__ import annotations

import argparse
import json
import os
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


def bench_motion(rounds: int = 7) -> dict[str, Any]:
    from agent.vision.motion import MotionDetector, MotionSettings

    frames = _busy_lumas()
    settings = MotionSettings()
    h, w = frames[0][0].shape
    step = max(1, round(w / settings.work_width))
    work = (w // step, h // step)
    min_area_px = settings.min_area * work[0] * work[1]

    ours_best = base_best = float("inf")
    ours_motion: list[bool] = []
    base_motion: list[bool] = []
    for _ in range(rounds):
        det = MotionDetector(settings)
        t0 = time.perf_counter()
        ours = [det.process(luma, ts, chroma).motion for luma, ts, chroma in frames]
        ours_best = min(ours_best, time.perf_counter() - t0)
        base = OpenCvBaseline(work, settings.threshold, settings.alpha, min_area_px)
        t0 = time.perf_counter()
        theirs = [bool(base.process(luma)) for luma, _, _ in frames]
        base_best = min(base_best, time.perf_counter() - t0)
        ours_motion, base_motion = ours, theirs
    n = len(frames)
    watched = range(int(settings.warmup_s * 10) + 1, n)  # both past their warm-up
    agree = sum(ours_motion[i] == base_motion[i] for i in watched) / len(watched)
    return {
        "motion_us_per_frame": round(ours_best / n * 1e6, 1),
        "opencv_motion_us_per_frame": round(base_best / n * 1e6, 1),
        "motion_ratio_vs_opencv": round(ours_best / base_best, 3),
        "motion_agreement_vs_opencv": round(agree, 3),
        "motion_frames_luma": f"{w}x{h} -> {work[0]}x{work[1]}",
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


def run() -> dict[str, Any]:
    figures: dict[str, Any] = {}
    figures.update(bench_motion())
    figures.update(bench_inference())
    figures.update(_child("pipeline"))
    figures.update(_child("rss"))
    merge_results({k: v for k, v in figures.items() if not isinstance(v, bool)})
    rows = [
        ("motion_us_per_frame", figures["motion_us_per_frame"], "numpy motion, busy scene"),
        ("opencv_motion_us_per_frame", figures["opencv_motion_us_per_frame"], "OpenCV classic steps"),
        ("motion_ratio_vs_opencv", f"{figures['motion_ratio_vs_opencv']:.3f}", "target <= 1.0"),
        ("motion_agreement_vs_opencv", figures["motion_agreement_vs_opencv"], "frames both call alike"),
    ]
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
    args = ap.parse_args()
    if args.pipeline_child:
        print(json.dumps(pipeline_child()))
    elif args.rss_child:
        print(json.dumps(rss_child()))
    else:
        run()
    return 0


if __name__ == "__main__":
    sys.exit(main())

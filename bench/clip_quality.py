"""Clip encoder settings against bytes, CPU and evidence (issue 18, for a metered 4G card).

Each setting is encoded through the agent's real clip path: an
``agent.clips.recorder.Recorder`` (frames offered at ``clips.fps``, strided,
scaled by ``to_yuv``, ``PyAvEncoder`` with the setting's libx264 options,
the ring's forced keyframe per segment, the remux to MP4) over 10 s of:

* real footage from tools/fetch-test-clips.sh: ``vtest`` (OpenCV's vtest.avi,
  pedestrians, 768x576), ``bikes`` (bikes.mp4: street shots with cuts, a
  cyclist, a walker, 640x272), ``tree`` (tree.avi played back and forth: a
  tree in the wind, the bytes worst case, no person);
* synthetic 1280x720 scenes: ``walkthrough`` (one person, 2-12 s), ``busy``
  (people, a cat, a swaying bush, 2-12 s), ``quiet`` (an empty yard with
  sensor noise).

Figures per setting:

* ``bytes``: the MP4 of those 10 s (a 0 s visit with pre 5 + post 5), per
  scene. A longer segment (GOP) also widens a real clip by a segment on
  average (it is cut at segment boundaries): ``clip_bytes`` is the bytes of a
  10 s window so widened, ``bytes * (10 + segment_s) / 10``.
* ``cpu``: process CPU (``time.process_time``, so libx264's own threads
  count) per clip frame for ``to_yuv`` + encode, on the same frames the
  recorder took, every setting in turn in each round (interleaved, order
  rotated), median and range of the rounds.
* ``psnr``/``ssim``: luma of each decoded frame against the encoder's own
  input (the source scaled to the clip's size), mean over the frames.
* ``kept``: the evidence test. The real TFLite person detector (the packaged
  uint8 model, threshold 0.5) on each source frame at its own resolution
  finds persons; a person is kept when the detector, run on the decoded clip
  frame, finds a box overlapping it by IoU >= 0.3. Share of the source's
  persons, and ``kept_vs_default``: that share over the current defaults'.

Bytes, PSNR, SSIM and detections are deterministic (one pass); only CPU varies.

    .venv/bin/python bench/clip_quality.py [--rounds 5] [--only base,crf32,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import ROOT, merge_results

from agent.clips.encoder import X264_OPTIONS, PyAvEncoder, to_yuv
from agent.clips.recorder import Recorder
from agent.config import ClipsConfig
from agent.vision.detector import PersonDetector
from agent.vision.tracker import Emitted
from protocol.messages import Event

CLIPS = ROOT / "var" / "clips"
SECONDS = 10.0
THRESHOLD = 0.5  # DetectConfig.score_threshold's default
IOU_MATCH = 0.3
PERSON_SCENES = ("vtest", "bikes", "walkthrough", "busy")


@dataclass(frozen=True)
class Setting:
    name: str
    opts: dict[str, str] = field(default_factory=dict)  # over agent.clips.encoder.X264_OPTIONS; "" drops one
    width: int = 640
    height: int = 360
    fps: float = 5.0
    segment_s: float = 2.0


# The defaults before bench/clip_quality.py (ultrafast, Baseline, CRF 28, sliced threads, 2 s segments) first,
# then one change at a time from them; then the new defaults (agent.clips.encoder.X264_OPTIONS, 4 s
# segments) and one change at a time from those.
OLD = {"preset": "ultrafast", "profile": "baseline", "crf": "28", "threads": ""}
NEW_SEG = 4.0
GRID: tuple[Setting, ...] = (
    Setting("base", OLD),
    Setting("superfast", {**OLD, "preset": "superfast"}),
    Setting("veryfast", {**OLD, "preset": "veryfast"}),
    Setting("faster", {**OLD, "preset": "faster"}),
    Setting("veryfast_main", {**OLD, "preset": "veryfast", "profile": "main"}),
    Setting("crf30", {**OLD, "crf": "30"}),
    Setting("crf32", {**OLD, "crf": "32"}),
    Setting("crf35", {**OLD, "crf": "35"}),
    Setting("threads1", {**OLD, "threads": "1"}),
    Setting("notune_t1", {**OLD, "tune": "", "threads": "1"}),
    Setting("stillimage_t1", {**OLD, "tune": "stillimage", "threads": "1"}),
    Setting("seg4", OLD, segment_s=4.0),
    Setting("seg5", OLD, segment_s=5.0),
    Setting("480x270", OLD, width=480, height=270),
    Setting("fps4", OLD, fps=4.0),
    Setting("aq1", {**OLD, "x264-params": "aq-mode=1"}),
    Setting("nr250", {**OLD, "x264-params": "nr=250"}),
    Setting("ipratio1.1", {**OLD, "x264-params": "ipratio=1.1"}),
    Setting("deblock", {**OLD, "x264-params": "deblock=0,0"}),
    Setting("scenecut40", {**OLD, "sc_threshold": "40"}),
    Setting("new", segment_s=NEW_SEG),
    Setting("new_seg2", segment_s=2.0),
    Setting("new_seg5", segment_s=5.0),
    Setting("new_crf28", {"crf": "28"}, segment_s=NEW_SEG),
    Setting("new_crf30", {"crf": "30"}, segment_s=NEW_SEG),
    Setting("new_crf32", {"crf": "32"}, segment_s=NEW_SEG),
    Setting("new_main", {"profile": "main"}, segment_s=NEW_SEG),
    Setting("new_superfast", {"preset": "superfast"}, segment_s=NEW_SEG),
    Setting("new_faster", {"preset": "faster"}, segment_s=NEW_SEG),
    Setting("new_sliced", {"threads": ""}, segment_s=NEW_SEG),
    Setting("new_aq0", {"x264-params": "aq-mode=0"}, segment_s=NEW_SEG),
    Setting("new_nr250", {"x264-params": "nr=250"}, segment_s=NEW_SEG),
    Setting("new_480x270", width=480, height=270, segment_s=NEW_SEG),
    Setting("new_fps4", fps=4.0, segment_s=NEW_SEG),
)


class _Frame:
    """What ``Recorder.offer`` reads of a frame."""

    __slots__ = ("height", "rgb", "ts", "width")

    def __init__(self, ts: float, rgb: np.ndarray) -> None:
        self.ts, self.rgb = ts, rgb
        self.height, self.width = rgb.shape[:2]


def _file_frames(name: str, start: float, pingpong: bool = False) -> list[_Frame]:
    from agent.vision.sources import VideoFileSource

    src = VideoFileSource(CLIPS / name)
    src.open()
    raw: list[tuple[float, np.ndarray]] = []
    try:
        while (f := src.read()) is not None and f.ts < start + SECONDS:
            if f.ts >= start:
                raw.append((f.ts - start, f.rgb))
    finally:
        src.close()
    if not pingpong:
        return [_Frame(ts, rgb) for ts, rgb in raw]
    fps = len(raw) / (raw[-1][0] + raw[1][0])
    order = list(range(len(raw))) + list(range(len(raw) - 2, 0, -1))
    n = int(SECONDS * fps)
    return [_Frame(i / fps, raw[order[i % len(order)]][1]) for i in range(n)]


def _synthetic_frames(scene: str, start: float) -> list[_Frame]:
    from agent.vision.synthetic import SyntheticSource

    src = SyntheticSource(scene, width=1280, height=720, fps=10, seconds=start + SECONDS)
    src.open()
    out = []
    while (f := src.read()) is not None:
        if f.ts >= start - 1e-6:
            out.append(_Frame(f.ts - start, f.rgb))
    return out


def sources() -> dict[str, list[_Frame]]:
    out: dict[str, list[_Frame]] = {}
    for name, file, start, pingpong in (
        ("vtest", "vtest.avi", 0.0, False),
        ("bikes", "bikes.mp4", 0.0, False),
        ("tree", "tree.avi", 0.0, True),
    ):
        if (CLIPS / file).is_file():
            out[name] = _file_frames(file, start, pingpong)
        else:
            print(f"  {file} missing (tools/fetch-test-clips.sh): skipped")
    for scene, start in (("walkthrough", 2.0), ("busy", 2.0), ("quiet", 0.0)):
        out[scene] = _synthetic_frames(scene, start)
    return out


def _emitted(phase: str, ts: float) -> Emitted:
    time_ms = 1_735_689_600_000 + round(ts * 1000)
    return Emitted(
        Event(event_id=1, kind="person", phase=phase, time_ms=time_ms, score=80),
        ts,
        0.8,
        None,
    )


def record(s: Setting, frames: list[_Frame], tmp: Path) -> tuple[Path, list[_Frame]]:
    """The 10 s clip of ``frames`` as the agent records it; returns the MP4 and the frames the recorder took."""
    cfg = dataclasses.replace(
        ClipsConfig(), width=s.width, height=s.height, fps=s.fps, segment_s=s.segment_s, pre_s=5.0, post_s=5.0
    )
    rec = Recorder(
        cfg,
        tmp,
        1,
        wall_ms=lambda: 1_735_689_600_000,
        make_encoder=lambda w, h, fps: PyAvEncoder(w, h, fps, options=s.opts),
    )
    rec.start()
    taken = []
    for i, f in enumerate(frames):
        if rec.offer(f):
            taken.append(f)
            assert rec.drain()
        if i == 0:
            rec.on_event(_emitted("start", SECONDS / 2))
            rec.on_event(_emitted("end", SECONDS / 2))
    assert rec.drain()
    rec.stop(close=False)
    clip = rec.store.get(1)
    rec.store.close()
    assert clip is not None and rec.dropped == 0, (s.name, rec.error)
    return rec.store.path_of(1), taken


def _strided(f: _Frame, s: Setting) -> np.ndarray:
    step = max(1, min(f.width // (s.width & ~1), f.height // (s.height & ~1)))  # as Recorder.offer
    return np.ascontiguousarray(f.rgb[::step, ::step])


def persons_of(detector: PersonDetector, rgb: np.ndarray) -> list[tuple[float, ...]]:
    """Person boxes (normalised) on the whole frame and on square tiles across it, as the pipeline's square
    regions around motion see them (a 16:9 frame squeezed into the 300x300 input hides upright people)."""
    h, w = rgb.shape[:2]
    side = min(w, h)
    n = 1 if w == h else -(-max(w, h) // side) + 1
    regions = [None] + [
        (x, 0, x + side, h) if w > h else (0, x, w, x + side)
        for x in np.linspace(0, max(w, h) - side, n).round().astype(int)
    ]
    found: list[tuple[float, ...]] = []
    for region in regions:
        for d in detector.detect(rgb, region=region, score_threshold=THRESHOLD):
            if all(_iou(d.box, b) < 0.5 for b in found):
                found.append(d.box)
    return found


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def quality(
    s: Setting, mp4: Path, taken: list[_Frame], detector: PersonDetector, refs: dict[float, list[Any]] | None
) -> dict[str, Any]:
    import av
    from skimage.metrics import structural_similarity

    with av.open(str(mp4)) as c:
        decoded = list(c.decode(c.streams.video[0]))
    assert len(decoded) == len(taken), (s.name, len(decoded), len(taken))
    psnr, ssim, found, kept = [], [], 0, 0
    for f, d in zip(taken, decoded, strict=True):
        h = d.height
        ref = to_yuv(_strided(f, s), s.width & ~1, s.height & ~1).to_ndarray()[:h].astype(np.float64)
        got = d.reformat(format="yuv420p").to_ndarray()[:h].astype(np.float64)
        mse = float(np.mean((ref - got) ** 2))
        psnr.append(99.0 if mse == 0 else 10 * np.log10(255**2 / mse))
        ssim.append(float(structural_similarity(ref, got, data_range=255)))
        if refs is not None:
            persons = refs[f.ts]
            if persons:
                boxes = persons_of(detector, d.to_ndarray(format="rgb24"))
                found += len(persons)
                kept += sum(any(_iou(p, b) >= IOU_MATCH for b in boxes) for p in persons)
    return {
        "bytes": mp4.stat().st_size,
        "frames": len(decoded),
        "psnr": round(statistics.fmean(psnr), 2),
        "ssim": round(statistics.fmean(ssim), 4),
        "persons": found,
        "kept": kept,
    }


def cpu_rounds(
    settings: list[Setting], taken: dict[tuple[str, str], list[_Frame]], rounds: int
) -> dict[str, list[float]]:
    """Process CPU ms per clip frame, ``to_yuv`` + encode, each setting in turn, the order rotated each round."""
    per: dict[str, list[float]] = {s.name: [] for s in settings}
    scenes = sorted({scene for _, scene in taken})
    for r in range(rounds):
        order = settings[r % len(settings) :] + settings[: r % len(settings)]
        for s in order:
            ms, n = 0.0, 0
            for scene in scenes:
                frames = taken[(s.name, scene)]
                rgbs = [_strided(f, s) for f in frames]
                enc = PyAvEncoder(s.width, s.height, s.fps, options=s.opts)
                first = None
                t = time.process_time()
                for f, rgb in zip(frames, rgbs, strict=True):
                    key = first is None or f.ts - first >= s.segment_s - 0.5 / s.fps
                    first = f.ts if key else first
                    enc.encode(to_yuv(rgb, enc.width, enc.height), f.ts, key)
                enc.flush()
                ms += (time.process_time() - t) * 1000
                n += len(frames)
                enc.close()
            per[s.name].append(ms / n)
    return per


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated setting names (base is always in)")
    parser.add_argument("--no-merge", action="store_true", help="print only, do not write bench/results.json")
    args = parser.parse_args()
    names = {n for n in args.only.split(",") if n}
    settings = [s for s in GRID if not names or s.name in names or s.name == "base"]
    detector = PersonDetector(num_threads=1)
    src = sources()
    refs: dict[str, dict[float, list[Any]]] = {}
    for scene in PERSON_SCENES:
        if scene in src:
            refs[scene] = {f.ts: persons_of(detector, f.rgb) for f in src[scene]}
    rows: dict[str, dict[str, Any]] = {}
    taken: dict[tuple[str, str], list[_Frame]] = {}
    for s in settings:
        row: dict[str, Any] = {"scenes": {}}
        for scene, frames in src.items():
            with tempfile.TemporaryDirectory() as tmp:
                mp4, took = record(s, frames, Path(tmp))
                row["scenes"][scene] = quality(s, mp4, took, detector, refs.get(scene))
            if scene in ("vtest", "walkthrough", "busy"):
                taken[(s.name, scene)] = took
        rows[s.name] = row
        print(f"  {s.name}: " + " ".join(f"{k}={v['bytes']}" for k, v in row["scenes"].items()), flush=True)
    cpu = cpu_rounds(settings, taken, args.rounds)

    base = rows["base"]["scenes"]
    base_kept = sum(v["kept"] for v in base.values()) / max(1, sum(v["persons"] for v in base.values()))
    figures: dict[str, Any] = {"clipq_x264_base_options": X264_OPTIONS, "clipq_cpu_rounds": args.rounds}
    print(
        f"\n{'setting':<28}{'walk':>8}{'vtest':>8}{'busy':>8}{'bikes':>8}{'tree':>8}{'quiet':>8}"
        f"{'x walk':>7}{'x vtest':>8}{'clip KB':>8}{'cpu ms':>8}{'range':>12}"
        f"{'PSNR':>7}{'SSIM':>7}{'kept':>7}{'/base':>7}"
    )
    for s in settings:
        sc = rows[s.name]["scenes"]
        persons = sum(v["persons"] for v in sc.values())
        kept = sum(v["kept"] for v in sc.values()) / max(1, persons)
        total = sum(v["bytes"] for v in sc.values())
        med = statistics.median(cpu[s.name])
        psnr = statistics.fmean(v["psnr"] for v in sc.values())
        ssim = statistics.fmean(v["ssim"] for v in sc.values())
        clip_kb = total / len(sc) * (SECONDS + s.segment_s) / SECONDS / 1000
        key = f"clipq_{s.name}"
        opts = ",".join(f"{k}={v}" for k, v in s.opts.items()) or "defaults"
        figures[key] = {
            "setting": f"{opts} {s.width}x{s.height} {s.fps:g} fps, {s.segment_s:g} s segments",
            "bytes_per_10s": {k: v["bytes"] for k, v in sc.items()},
            "clip_bytes_mean": round(clip_kb * 1000),
            "cpu_ms_per_frame": f"{med:.2f} ({min(cpu[s.name]):.2f}-{max(cpu[s.name]):.2f})",
            "psnr_y_mean": round(psnr, 2),
            "ssim_y_mean": round(ssim, 4),
            "persons_kept": " ".join(f"{k} {v['kept']}/{v['persons']}" for k, v in sc.items() if v["persons"]),
            "kept_vs_base": round(kept / base_kept, 4) if base_kept else None,
        }

        def b(k: str, sc: dict[str, Any] = sc) -> str:
            return f"{sc[k]['bytes'] / 1000:.0f}" if k in sc else "-"

        def x(k: str, sc: dict[str, Any] = sc) -> str:
            return f"{base[k]['bytes'] / sc[k]['bytes']:.2f}" if k in sc else "-"

        rng = f"{min(cpu[s.name]):.2f}-{max(cpu[s.name]):.2f}"
        print(
            f"{s.name:<28}{b('walkthrough'):>8}{b('vtest'):>8}{b('busy'):>8}{b('bikes'):>8}{b('tree'):>8}"
            f"{b('quiet'):>8}{x('walkthrough'):>7}{x('vtest'):>8}{clip_kb:>8.0f}{med:>8.2f}{rng:>12}"
            f"{psnr:>7.2f}{ssim:>7.4f}{kept:>7.3f}{kept / base_kept if base_kept else 0:>7.3f}"
        )
    if not args.no_merge:
        merge_results(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

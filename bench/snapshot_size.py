"""Snapshot size against recognisability (issue 19, lever "Snapshot size and quality").

For frames with people, real footage (var/clips/vtest.avi, bikes.mp4; fetched
by tools/fetch-test-clips.sh) and the synthetic walkthrough and busy scenes,
the real PersonDetector (the packaged uint8 TFLite model) finds the person on
the full frame, as the pipeline's best detection would be. Then, for each
setting of ``snapshot.max_bytes`` x ``snapshot.max_width`` (crop on), the
snapshot is made exactly as the agent makes it
(``agent.vision.snapshot.make_snapshot``), its JPEG decoded, and the detector
run on the decoded snapshot as its whole input. The same detector on the
original pixels of the same crop region is the reference:

* ``kept``: the snapshot still holds the person (a detection at or above the
  default score threshold, 0.5, overlapping the person's box by IoU >= 0.3),
  out of the samples where the original crop does;
* ``rel_score``: the snapshot's score over the original crop's score;
* ``person_px``: the person's height in snapshot pixels. A recognisability
  proxy for the operator, after IEC EN 62676-4:2015's DORI levels:
  observation 62.5 px/m, recognition 125 px/m, i.e. about 106 and 212 px for
  a 1.7 m person (``observe``/``recognise`` shares). A snapshot can never be
  taller than its source, so ``px_kept`` (snapshot height over the person's
  height in the source frame) says what the setting itself costs.

Besides: the agent's own visit snapshots (each visit's best frame, through
``run_replay`` at ``max_bytes`` 6000/8000/12000) on the same sources, and in
how many the model still finds a person.

Bytes, sizes, qualities and scores are deterministic (same frames, same
encoder, same model): one pass. Only the encode time varies; it is the
median and range over interleaved rounds.

    .venv/bin/python bench/snapshot_size.py
    .venv/bin/python bench/snapshot_size.py --quick      # fewer frames
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import simplejpeg
from _common import ROOT, merge_results

from agent.vision.detector import Detection, PersonDetector
from agent.vision.snapshot import make_snapshot, snapshot_region

CLIPS = ROOT / "var" / "clips"
MAX_BYTES = (3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 12000)
MAX_WIDTHS = (320, 400, 480, 640)
THRESHOLD = 0.5  # DetectConfig.score_threshold's default
IOU_MATCH = 0.3
OBSERVE_PX = 106  # 62.5 px/m x 1.7 m
RECOGNISE_PX = 212  # 125 px/m x 1.7 m
SCENES = ("walkthrough", "busy", "ir_visitor", "dusk")
VISIT_BYTES = (6000, 8000, 12000)
Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Sample:
    source: str
    index: int
    rgb: np.ndarray
    box: Box  # the person, normalised to the frame
    score: float  # the detector's on the full frame


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _person_score(found: list[Detection], target: Box) -> float:
    """The best score among detections overlapping ``target`` (0 if none)."""
    return max((d.score for d in found if _iou(d.box, target) >= IOU_MATCH), default=0.0)


class _Recording(PersonDetector):
    """The real detector, noting the frame and the best person of every run the
    pipeline makes that finds one (the box the tracker would snapshot)."""

    def __init__(self, every: int) -> None:
        super().__init__(num_threads=2, score_threshold=THRESHOLD)
        self.every, self.runs = every, 0
        self.found: list[tuple[np.ndarray, Detection]] = []

    def detect(
        self, rgb: np.ndarray, region: tuple[int, int, int, int] | None = None, score_threshold: float | None = None
    ) -> list[Detection]:
        found = super().detect(rgb, region, score_threshold)
        if found and score_threshold is None:
            self.runs += 1
            if self.runs % self.every == 1 or self.every == 1:
                self.found.append((rgb, found[0]))
        return found


def _pipeline_samples(source: str, every: int) -> list[Sample]:
    """Person boxes as the real pipeline finds them (motion crops, relearning,
    clutter and all) on ``source``, every ``every``-th detector run with a person."""
    from agent.vision.replay import run_replay

    rec = _Recording(every)
    run_replay(source, detector=rec)
    name = Path(source).name if not source.startswith("synthetic:") else source.split("?")[0]
    return [Sample(name, i, rgb, d.box, d.score) for i, (rgb, d) in enumerate(rec.found)]


def collect(quick: bool) -> list[Sample]:
    if not (CLIPS / "vtest.avi").is_file() or not (CLIPS / "bikes.mp4").is_file():
        subprocess.run([str(ROOT / "tools" / "fetch-test-clips.sh")], check=True, cwd=ROOT)
    k = 3 if quick else 1
    samples = _pipeline_samples(str(CLIPS / "vtest.avi"), 3 * k) + _pipeline_samples(str(CLIPS / "bikes.mp4"), k)
    # The synthetic scenes are the camera's own 1280x720; three seeds each (noise and
    # texture differ), and the two night scenes: IR grey, where the armed hours are.
    for scene in SCENES:
        for seed in range(3):
            samples += _pipeline_samples(f"synthetic:{scene}?seed={seed}", k)
    return samples


def _in_region(box: Box, region: tuple[int, int, int, int], width: int, height: int) -> Box:
    """``box`` (normalised to the frame) normalised to the pixel ``region``."""
    x1, y1, x2, y2 = region
    cw, ch = x2 - x1, y2 - y1
    return (
        (box[0] * width - x1) / cw,
        (box[1] * height - y1) / ch,
        (box[2] * width - x1) / cw,
        (box[3] * height - y1) / ch,
    )


def _dqt(jpeg: bytes) -> bytes:
    i = jpeg.find(b"\xff\xdb")
    return jpeg[i + 5 : i + 69]  # the first (luma) table's 64 entries, 8-bit


_TABLES = {_dqt(simplejpeg.encode_jpeg(np.zeros((8, 8, 3), np.uint8), quality=q)): q for q in range(1, 101)}


def _quality(jpeg: bytes) -> int:
    """The JPEG quality the encoder used: its luma table, looked up among simplejpeg's own."""
    return _TABLES.get(_dqt(jpeg), -1)


def measure(detector: PersonDetector, samples: list[Sample]) -> dict[tuple[int, int], list[dict[str, Any]]]:
    refs = []
    for s in samples:
        h, w = s.rgb.shape[:2]
        region = snapshot_region(s.box, w, h) or (0, 0, w, h)
        x1, y1, x2, y2 = region
        target = _in_region(s.box, region, w, h)
        ref = _person_score(detector.detect(np.ascontiguousarray(s.rgb[y1:y2, x1:x2]), score_threshold=0.05), target)
        refs.append((region, target, ref))
    rows: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for max_bytes in MAX_BYTES:
        for max_width in MAX_WIDTHS:
            out = rows.setdefault((max_bytes, max_width), [])
            for s, (_region, target, ref) in zip(samples, refs, strict=True):
                try:
                    snap = make_snapshot(
                        s.rgb, event_id=1, phase="start", time_ms=0, box=s.box, max_bytes=max_bytes, max_width=max_width
                    )
                except ValueError:  # no snapshot fits: the visit goes without one
                    out.append(
                        {"bytes": 0, "width": 0, "quality": 0, "ref": ref, "score": 0.0, "px": 0.0, "px_kept": 0.0}
                        | {"source": s.source}
                    )
                    continue
                img = simplejpeg.decode_jpeg(snap.jpeg, colorspace="RGB")
                score = _person_score(detector.detect(img, score_threshold=0.05), target)
                src_px = (s.box[3] - s.box[1]) * s.rgb.shape[0]
                px = (target[3] - target[1]) * img.shape[0]
                out.append(
                    {
                        "bytes": len(snap.jpeg),
                        "width": snap.width,
                        "quality": _quality(snap.jpeg),
                        "ref": ref,
                        "score": score,
                        "px": px,
                        "px_kept": px / src_px,
                        "source": s.source,
                    }
                )
    return rows


def encode_ms(samples: list[Sample], rounds: int) -> dict[tuple[int, int], list[float]]:
    """Per max_bytes (at max_width 640), per round: the median ms of make_snapshot
    over the samples. Settings take turns within each round (interleaved), in a
    shifted order."""
    settings = [(b, 640) for b in MAX_BYTES]
    out: dict[tuple[int, int], list[float]] = {k: [] for k in settings}
    for r in range(rounds):
        for b, w in settings[r % len(settings) :] + settings[: r % len(settings)]:
            times = []
            for s in samples:
                t0 = time.perf_counter()
                with contextlib.suppress(ValueError):
                    make_snapshot(s.rgb, event_id=1, phase="start", time_ms=0, box=s.box, max_bytes=b, max_width=w)
                times.append((time.perf_counter() - t0) * 1000)
            out[(b, w)].append(statistics.median(times))
    return out


def visit_snapshots(max_bytes: int, quick: bool) -> tuple[int, int]:
    """The agent's own person snapshots (each visit's best frame) at ``max_bytes``
    over the same sources: how many the model still finds a person in, decoded."""
    from agent.config_vision import SnapshotConfig, VisionConfig
    from agent.vision.replay import run_replay

    detector = PersonDetector(num_threads=2, score_threshold=THRESHOLD)
    config = replace(VisionConfig(), snapshot=SnapshotConfig(max_bytes=max_bytes))
    sources = [str(CLIPS / "vtest.avi"), str(CLIPS / "bikes.mp4")]
    sources += [f"synthetic:{scene}?seed={seed}" for scene in SCENES for seed in range(1 if quick else 3)]
    found = total = 0
    for source in sources:
        result = run_replay(source, config, detector=detector)
        for e in result.events:
            if e.snapshot is not None and e.event.kind == "person":
                total += 1
                found += bool(detector.detect(simplejpeg.decode_jpeg(e.snapshot.jpeg, colorspace="RGB")))
    return found, total


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    counted = [r for r in rows if r["ref"] >= THRESHOLD]
    kept = [r for r in counted if r["score"] >= THRESHOLD]
    rel = [r["score"] / r["ref"] for r in counted]
    px = [r["px"] for r in rows]
    return {
        "failed": sum(r["bytes"] == 0 for r in rows),
        "bytes_median": statistics.median(r["bytes"] for r in rows),
        "bytes_max": max(r["bytes"] for r in rows),
        "width_median": statistics.median(r["width"] for r in rows),
        "quality_median": statistics.median(r["quality"] for r in rows),
        "kept_pct": round(100 * len(kept) / len(counted), 1) if counted else None,
        "rel_score_median": round(statistics.median(rel), 3) if rel else None,
        "rel_score_p10": round(float(np.percentile(rel, 10)), 3) if rel else None,
        "person_px_median": round(statistics.median(px)),
        "px_kept_median": round(statistics.median(r["px_kept"] for r in rows), 3),
        "observe_pct": round(100 * sum(p >= OBSERVE_PX for p in px) / len(px), 1),
        "recognise_pct": round(100 * sum(p >= RECOGNISE_PX for p in px) / len(px), 1),
        "counted": len(counted),
        "by_source": {
            src: {
                "kept_pct": round(100 * sum(r["score"] >= THRESHOLD for r in rs if r["ref"] >= THRESHOLD) / n, 1)
                if (n := sum(r["ref"] >= THRESHOLD for r in rs))
                else None,
                "person_px_median": round(statistics.median(r["px"] for r in rs)),
                "px_kept_median": round(statistics.median(r["px_kept"] for r in rs), 3),
                "bytes_median": statistics.median(r["bytes"] for r in rs),
            }
            for src in sorted({r["source"] for r in rows})
            if (rs := [r for r in rows if r["source"] == src])
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a third of the frames")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds for the encode time")
    ap.add_argument("--no-save", action="store_true", help="print only; leave bench/results.json alone")
    args = ap.parse_args()

    samples = collect(args.quick)
    detector = PersonDetector(num_threads=2, score_threshold=THRESHOLD)
    by_source: dict[str, int] = {}
    for s in samples:
        by_source[s.source] = by_source.get(s.source, 0) + 1
    src_px = [(s.box[3] - s.box[1]) * s.rgb.shape[0] for s in samples]
    print(f"{len(samples)} frames with a person: {by_source}")
    lo, mid, hi = min(src_px), statistics.median(src_px), max(src_px)
    print(f"person height in the source frame: median {mid:.0f} px ({lo:.0f}-{hi:.0f})")

    rows = measure(detector, samples)
    times = encode_ms(samples, args.rounds)
    table = {k: summarise(v) for k, v in rows.items()}
    base = table[(12000, 640)]
    for t in table.values():
        t["kept_vs_12000_pct"] = round(100 * t["kept_pct"] / base["kept_pct"], 1)
        t["worst_source_vs_12000_pct"] = min(
            round(100 * v["kept_pct"] / base["by_source"][src]["kept_pct"], 1)
            for src, v in t["by_source"].items()
            if v["kept_pct"] is not None and base["by_source"][src]["kept_pct"]
        )
    for (b, w), ms in times.items():
        table[(b, w)]["encode_ms_median"] = round(statistics.median(ms), 2)
        table[(b, w)]["encode_ms_range"] = [round(min(ms), 2), round(max(ms), 2)]
    print(
        "\nmax_bytes/max_width: median bytes (max), width, quality | detection kept % (of 12000/640's; worst source's)"
        " | relative score median (p10) | person px median, >= 106 px %, >= 212 px % | encode ms median (range)"
    )
    for (b, w), t in table.items():
        timing = (
            f"{t['encode_ms_median']:5.2f} ms ({t['encode_ms_range'][0]:.2f}-{t['encode_ms_range'][1]:.2f})"
            if w == 640
            else ""
        )
        print(
            f"  {b:>6}/{w:<4} {t['bytes_median']:>7.0f} ({t['bytes_max']:>5})"
            f" w {t['width_median']:>4.0f} q {t['quality_median']:>3.0f}"
            f" | {t['kept_pct']:>5.1f}% ({t['kept_vs_12000_pct']:5.1f}%; {t['worst_source_vs_12000_pct']:5.1f}%)"
            f" | {t['rel_score_median']:.3f} ({t['rel_score_p10']:.3f})"
            f" | {t['person_px_median']:>4} {t['observe_pct']:>5.1f}% {t['recognise_pct']:>5.1f}% | {timing}"
            + (f"  {t['failed']} failed" if t["failed"] else "")
        )
    print("\nby source, max_width 640: kept %, person px median (share of the source's height kept), median bytes")
    for (b, w), t in table.items():
        if w != 640:
            continue
        cells = "  ".join(
            f"{src.split(':')[-1][:6]:>6} {v['kept_pct']:>5}% {v['person_px_median']:>4}px"
            f" ({v['px_kept_median']:.2f}) {v['bytes_median']:>6.0f}B"
            for src, v in t["by_source"].items()
        )
        print(f"  {b:>6} {cells}")
    visits = {b: visit_snapshots(b, args.quick) for b in VISIT_BYTES}
    print("\nthe agent's own visit snapshots (best frame of each visit), person found on the decoded JPEG:")
    print("  " + "  ".join(f"{b}: {f}/{n}" for b, (f, n) in visits.items()))
    print(f"\n{base['counted']} of {len(samples)} samples have the person found (>= {THRESHOLD}) on the original crop")
    print("bytes, widths, qualities and scores are deterministic (one pass); only the encode time varies")

    if not args.no_save:
        figures: dict[str, Any] = {
            "snapshot_samples": len(samples),
            "snapshot_samples_by_source": by_source,
            "snapshot_source_person_px_median": round(statistics.median(src_px)),
        }
        figures |= {f"snapshot_{b}_{w}": t for (b, w), t in table.items()}
        figures |= {f"snapshot_visits_found_{b}": f"{f}/{n}" for b, (f, n) in visits.items()}
        merge_results(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

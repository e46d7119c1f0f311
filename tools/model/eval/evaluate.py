"""Accuracy on the labelled set + speed, for whichever runtime this venv has."""
import json, os, statistics, sys, time
import numpy as np

OUT = os.environ.get("XL_EVAL_SET", "/tmp/xl-eval-set.npz")
from agent.vision.detector import PersonDetector, DEFAULT_MODEL, FLOAT_MODEL, square_region_around

def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0])); ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih; u = (a[2]-a[0])*(a[3]-a[1]) + (b[2]-b[0])*(b[3]-b[1]) - inter
    return inter / u if u > 0 else 0.0

def bench(det, frame, region=None, n=60):
    for _ in range(5): det.detect(frame, region)
    inv, tot = [], []
    for _ in range(n):
        t = time.perf_counter(); det.detect(frame, region); tot.append((time.perf_counter()-t)*1000); inv.append(det.last_inference_ms)
    return statistics.median(inv), statistics.median(tot)

mode = sys.argv[1]
res = {}
for model in (DEFAULT_MODEL, FLOAT_MODEL):
    name = model.stem.split("_")[-1]
    if mode == "speed":
        for threads in (1, 2):
            det = PersonDetector(model, num_threads=threads, score_threshold=0.5)
            f300 = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
            f720 = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
            i300, t300 = bench(det, f300)
            _, t720 = bench(det, f720)
            print(f"{det.runtime_name} {name} threads={threads}: invoke {i300:.1f} ms, detect(300x300) {t300:.1f} ms, detect(1280x720) {t720:.1f} ms", flush=True)
        continue
    d = np.load(OUT)
    frames, boxes, kinds, labels = d["frames"], d["boxes"], d["kinds"], d["labels"]
    det = PersonDetector(model, num_threads=2, score_threshold=0.1)
    rng = np.random.default_rng(99)
    for region_mode in (False, True):
        rows = []
        for f, b, k, l in zip(frames, boxes, kinds, labels):
            region = None
            if region_mode:
                if l:
                    motion = tuple(float(v) for v in b)
                else:
                    w, h = rng.uniform(0.05, 0.6, 2); x, y = rng.uniform(0, 1-w), rng.uniform(0, 1-h)
                    motion = (x, y, x+w, y+h)
                region = square_region_around(motion, 640, 480)
            dets = det.detect(f, region)
            rows.append((k, int(l), [(x.score, iou(x.box, b) if l else 0.0) for x in dets]))
        tag = f"{name} {'region' if region_mode else 'full-frame'}"
        for thr in (0.5, 0.3):
            pos = [r for r in rows if r[1]]; neg = [r for r in rows if not r[1]]
            hit = lambda r: any(s >= thr and o >= 0.5 for s, o in r[2])
            rec = sum(hit(r) for r in pos) / len(pos)
            fpimg = sum(any(s >= thr for s, _ in r[2]) for r in neg)
            extra = sum(sum(1 for s, o in r[2] if s >= thr and o < 0.5) for r in pos)
            buckets = {}
            for r in pos:
                if r[0].startswith("paste"):
                    frac = float(r[0].split(":")[2]); bk = "<0.35" if frac < 0.35 else ("0.35-0.6" if frac < 0.6 else ">=0.6")
                else:
                    bk = "orig"
                buckets.setdefault(bk, []).append(hit(r))
            bstr = ", ".join(f"{k2} {sum(v)}/{len(v)}" for k2, v in sorted(buckets.items()))
            print(f"{det.runtime_name} {tag} thr={thr}: recall {rec:.3f} ({sum(hit(r) for r in pos)}/{len(pos)}) [{bstr}]; "
                  f"negative frames with a person {fpimg}/{len(neg)}; extra boxes on positives {extra}", flush=True)
        negmax = max((max([s for s, _ in r[2]], default=0.0), r[0]) for r in rows if not r[1])
        print(f"  max negative score {negmax[0]:.3f} ({negmax[1]})")
        for r in rows:
            if r[0].startswith("orig"):
                print("  ", r[0], [(round(s, 3), round(o, 2)) for s, o in r[2]])

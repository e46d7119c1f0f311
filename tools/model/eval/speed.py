"""Median invoke/detect latency; best of 3 rounds to dampen noise from other users of the 2 cores."""
import os, statistics, sys, time
import numpy as np
from agent.vision.detector import PersonDetector, DEFAULT_MODEL, FLOAT_MODEL
n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
f300 = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
f720 = np.random.default_rng(0).integers(0, 256, (720, 1280, 3), dtype=np.uint8)
print("loadavg before", os.getloadavg())
for model in (DEFAULT_MODEL, FLOAT_MODEL):
    for threads in (1, 2):
        det = PersonDetector(model, num_threads=threads)
        best = None
        for _ in range(3):
            for _ in range(5): det.detect(f300)
            inv, t300, t720 = [], [], []
            for _ in range(n):
                t = time.perf_counter(); det.detect(f300); t300.append((time.perf_counter() - t) * 1e3); inv.append(det.last_inference_ms)
                t = time.perf_counter(); det.detect(f720); t720.append((time.perf_counter() - t) * 1e3)
            r = (statistics.median(inv), statistics.median(t300), statistics.median(t720))
            best = r if best is None or r[0] < best[0] else best
        print(f"{det.runtime_name} {model.stem} threads={threads}: invoke {best[0]:.1f} ms | detect 300x300 {best[1]:.1f} ms | detect 1280x720 {best[2]:.1f} ms", flush=True)
print("loadavg after", os.getloadavg())

"""`make bench`: run every benchmark, then print bench/results.json as one table.

Each benchmark is a script that merges its own keys into bench/results.json;
a benchmark that fails is reported and the others still run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    "wire_size.py",
    "config_load.py",
    "vision.py",
    "vision_relearn.py",
    "snapshot_size.py",
    "vision_clutter.py",
    "provision.py",
    "hub_ingest.py",
    "fleet.py",
    "hub_absence.py",
    "reconnect.py",
    "fuzz_soak.py",
]

TARGETS = {
    "event_wire_bytes": ("<=", 160),
    "motion_ratio_vs_opencv": ("<=", 1.0),
    "pipeline_rtf": ("<=", 0.10),
    "agent_rss_mb": ("<=", 150),
    "footprint_busy-file_rss_mb": ("<=", 80),  # the whole xl-agent run process (issue 16)
    "footprint_busy-synthetic_rss_mb": ("<=", 80),
    "hub_ingest_ratio_sqlite": (">=", 0.5),
    "hub_ingest_ratio_postgres": (">=", 0.5),
    "e2e_latency_p99_ms": ("<=", 250),
    "alert_latency_p99_ms": ("<=", 300),
    "provision_3312_s": ("<=", 60),
    "offline_detect_s": ("<=", 90),
}


def main() -> int:
    failed = []
    for name in ORDER:
        script = HERE / name
        if not script.exists():
            continue
        print(f"\n=== {name} ===", flush=True)
        start = time.monotonic()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"--- {name}: exit {rc} in {time.monotonic() - start:.0f} s", flush=True)
        if rc != 0:
            failed.append(name)
    results = json.loads((HERE / "results.json").read_text()) if (HERE / "results.json").exists() else {}
    print("\nbench/results.json")
    print(f"  {'key':<34}{'value':>14}  target")
    for key in sorted(results):
        value = results[key]
        target = TARGETS.get(key)
        verdict = ""
        if target and isinstance(value, int | float):
            op, bound = target
            ok = value <= bound if op == "<=" else value >= bound
            verdict = f"{op} {bound}  {'met' if ok else 'MISSED'}"
        print(f"  {key:<34}{value!s:>14}  {verdict}")
    if failed:
        print(f"\nbenchmarks that failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

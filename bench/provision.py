"""Time the county roll-out: provision 3,312 generated households from a CSV.

Prints ``provision_3312_s`` and merges it into bench/results.json (read,
modify, write: other benchmarks keep their figures). Also times the
idempotent re-run, which should do no certificate work at all.

    .venv/bin/python bench/provision.py [--db URL] [--households 3312]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from provisioning.commands import batch, ca_init, open_db
from provisioning.state import State
from provisioning.townships import MINQIN_TOWNSHIPS

RESULTS = Path(__file__).resolve().parent / "results.json"


def write_csv(path: Path, households: int, seed: int = 620621) -> None:
    rng = random.Random(seed)
    codes = sorted(MINQIN_TOWNSHIPS)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["township", "village", "household", "group", "lat", "lon", "name", "phone", "leader"])
        for i in range(households):
            town = codes[i * len(codes) // households]
            village = f"{MINQIN_TOWNSHIPS[town]}第{(i // 60) % 9 + 1}村"
            group = f"g{town}{i // 10:04d}"
            w.writerow(
                [
                    town,
                    village,
                    f"HH{i:06d}",
                    group,
                    f"{38.6 + rng.uniform(-0.5, 0.5):.5f}",
                    f"{103.1 + rng.uniform(-0.6, 0.6):.5f}",
                    f"户主{i}",
                    f"139{i:08d}",
                    "1" if i % 10 == 0 else "",
                ]
            )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", help="hub database URL (default: SQLite in a temp state folder)")
    ap.add_argument("--households", type=int, default=3312)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="xl-bench-prov-") as tmp:
        state = State(Path(tmp) / "state")
        ca_init(
            state,
            broker_host="hub.minqin.local",
            hostnames=[],
            broker_port=8883,
            ntp_server=None,
            hub_cn="hub",
            force=False,
        )
        csv_path = Path(tmp) / "county.csv"
        write_csv(csv_path, args.households)
        engine = open_db(state, args.db)
        t0 = time.perf_counter()
        rc = batch(state, engine, csv_path, reissue=False, broker_dir=None, quiet=True)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        rc2 = batch(state, engine, csv_path, reissue=False, broker_dir=None, quiet=True)
        rerun = time.perf_counter() - t0
        bundles = sum(1 for p in state.bundles.iterdir() if p.is_dir())
        engine.dispose()
    if rc or rc2 or bundles != args.households:
        print(f"batch failed: rc={rc}/{rc2}, bundles={bundles}", file=sys.stderr)
        return 1
    key = f"provision_{args.households}_s"
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[key] = round(first, 2)
    results[f"provision_{args.households}_rerun_s"] = round(rerun, 2)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"{key} {first:.2f}")
    print(f"provision_{args.households}_rerun_s {rerun:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

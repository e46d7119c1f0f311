"""Which binary delta for OTA updates: bsdiff4 against zstd --patch-from (issue 17).

The issue names bsdiff4, detools and zstd ``--patch-from``. detools is left
out before measuring: it has no wheel on the package index (an sdist only), so
a Pi would need a C compiler to apply its deltas. The two others are measured
on the artefacts a device actually downloads:

  agent-fix    this repository's wheel, 0.9.0 -> 0.9.1 with a one-line change
  agent-minor  0.9.0 -> 0.10.0 with code added to two modules (health, runtime)
  model-tuned  the uint8 model with 2 % of its weight bytes changed (a fine-tune)

For each: the delta's size against the full artefact, and the time to make
and to apply it (median and range of interleaved rounds, the two tools in
turn). zstd runs as Debian's ``zstd`` command (the Pi has the same package);
bsdiff4 as the Python wheel the agent ships.

    .venv/bin/python bench/delta_tools.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import bsdiff4
from _common import ROOT, merge_results, print_table

from tests.support.release_kit import MODEL, build_agent_wheel


def _zstd_make(old: Path, new: Path, out: Path) -> None:
    # --long must cover the whole old file, or matches past the default window are lost.
    window = max(27, (old.stat().st_size * 2).bit_length())
    subprocess.run(
        ["zstd", "-q", "-f", "-19", f"--long={window}", f"--patch-from={old}", str(new), "-o", str(out)],
        check=True,
        capture_output=True,  # its "optimal parser notes" on stderr
    )


def _zstd_apply(old: Path, patch: Path, out: Path) -> None:
    window = max(27, (old.stat().st_size * 2).bit_length())
    subprocess.run(
        ["zstd", "-q", "-d", "-f", f"--long={window}", f"--patch-from={old}", str(patch), "-o", str(out)], check=True
    )


def _bsdiff_make(old: Path, new: Path, out: Path) -> None:
    bsdiff4.file_diff(str(old), str(new), str(out))


def _bsdiff_apply(old: Path, patch: Path, out: Path) -> None:
    bsdiff4.file_patch(str(old), str(out), str(patch))


TOOLS: dict[str, tuple[Callable[[Path, Path, Path], None], Callable[[Path, Path, Path], None]]] = {
    "bsdiff4": (_bsdiff_make, _bsdiff_apply),
    "zstd": (_zstd_make, _zstd_apply),
}


def _pairs(work: Path) -> dict[str, tuple[Path, Path]]:
    wheels = work / "wheels"
    base = build_agent_wheel(wheels, "0.9.0")
    fix = build_agent_wheel(wheels, "0.9.1", change="a one-line fix")
    every = "\n".join(f"_TOUCHED_{i} = {i}" for i in range(3))
    minor = build_agent_wheel(wheels, "0.10.0", change="a minor release", code=every)
    tuned = work / "tuned.tflite"
    data = bytearray(MODEL.read_bytes())
    rng = random.Random(17)
    for i in rng.sample(range(len(data) // 8, len(data)), len(data) // 50):
        data[i] = rng.randrange(256)
    tuned.write_bytes(bytes(data))
    return {"agent-fix": (base, fix), "agent-minor": (base, minor), "model-tuned": (MODEL, tuned)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    if shutil.which("zstd") is None:
        print("zstd not installed (apt-get install zstd)", file=sys.stderr)
        return 1
    figures: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for case, (old, new) in _pairs(work).items():
            size = new.stat().st_size
            times: dict[str, dict[str, list[float]]] = {t: {"make": [], "apply": []} for t in TOOLS}
            sizes: dict[str, int] = {}
            for _ in range(args.rounds):
                for tool, (make, apply) in TOOLS.items():
                    patch, out = work / f"{case}.{tool}", work / f"{case}.{tool}.out"
                    start = time.perf_counter()
                    make(old, new, patch)
                    times[tool]["make"].append(time.perf_counter() - start)
                    start = time.perf_counter()
                    apply(old, patch, out)
                    times[tool]["apply"].append(time.perf_counter() - start)
                    if out.read_bytes() != new.read_bytes():
                        raise SystemExit(f"{tool} did not rebuild {case}")
                    sizes[tool] = patch.stat().st_size
            rows = []
            for tool in TOOLS:
                mk, ap_ = times[tool]["make"], times[tool]["apply"]
                rows.append((f"{tool} delta", sizes[tool], f"bytes, {100 * sizes[tool] / size:.2f} % of {size:,}"))
                rows.append((f"{tool} make", round(statistics.median(mk), 3), f"s (range {min(mk):.3f}-{max(mk):.3f})"))
                rows.append(
                    (f"{tool} apply", round(statistics.median(ap_), 3), f"s (range {min(ap_):.3f}-{max(ap_):.3f})")
                )
                key = f"delta_{case.replace('-', '_')}_{tool}"
                figures[f"{key}_bytes"] = sizes[tool]
                figures[f"{key}_apply_s"] = round(statistics.median(ap_), 3)
            figures[f"delta_{case.replace('-', '_')}_full_bytes"] = size
            ratio = sizes["zstd"] / sizes["bsdiff4"]
            rows.append(("zstd / bsdiff4 size", round(ratio, 2), ""))
            print_table(f"{case}: {old.name} -> {new.name} ({args.rounds} interleaved rounds)", rows)
    figures["delta_rounds"] = args.rounds
    merge_results(figures)
    print(f"\nwritten to {ROOT / 'bench' / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

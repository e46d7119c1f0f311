"""agent.memory: glibc malloc settings applied by ``xl-agent run``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, numpy as np, re
from agent import memory
done = memory.tune() if TUNE else []
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024
before = rss()
# Frame-sized buffers freed between small allocations that stay (as in the pipeline):
# with glibc's sliding threshold they end up in the heap, pinned below the small ones.
keep = []
for _ in range(20):
    a, b = np.ones((720, 1280, 3), np.uint8), np.ones((720, 1280, 3), np.uint8)
    keep.append(np.ones(1000)); del a, b
memory.trim() if TUNE else None
print(json.dumps({"done": done, "grew_mb": rss() - before}))
"""


def _probe(env: dict[str, str], tune: bool = True) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", f"TUNE = {tune}\n{PROBE}"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_tune_sets_glibc_parameters_and_frees_frame_buffers() -> None:
    r = _probe({})
    assert r["done"] == ["MALLOC_MMAP_THRESHOLD=131072", "MALLOC_TRIM_THRESHOLD=262144", "MALLOC_ARENA_MAX=2"]
    assert isinstance(r["grew_mb"], int) and r["grew_mb"] < 2
    untuned = _probe({}, tune=False)  # glibc defaults, no trim: what the two are for
    assert isinstance(untuned["grew_mb"], int) and untuned["grew_mb"] >= 4


def test_tune_leaves_what_the_environment_set() -> None:
    r = _probe({"MALLOC_ARENA_MAX": "4"})
    assert r["done"] == ["MALLOC_MMAP_THRESHOLD=131072", "MALLOC_TRIM_THRESHOLD=262144"]

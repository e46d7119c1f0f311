"""The agent's memory floor: resident memory after each start-up step, before any frame.

bench/agent_footprint.py measures the whole ``xl-agent run`` process over
minutes; this splits the part that is there before the first frame, step by
step in a fresh interpreter, so the cost of each library is visible:

  python       the interpreter alone
  numpy        + numpy (its OpenBLAS is loaded with it)
  link         + paho-mqtt, ssl, sqlite3, yaml (the link and the outbox)
  config       + the agent's config sections (they import the vision modules they
               configure), one config loaded as xl-agent run loads it: validated in a
               child process (xlconfig.isolated), so pydantic is not in this one
  agent        + the rest of the agent's modules (runtime, vision pipeline)
  clips        + PyAV (FFmpeg, libx264) and the clip encoder opened at 640x360
  litert       + the LiteRT runtime imported
  interpreter  + the person model loaded and its tensors allocated (XNNPACK packs the weights)
  inference    + one inference on a 1280x720 frame (XNNPACK's workspace, the frame)

Each round runs every step in a new process; rounds are repeated and the
median and range printed. Figures merge into bench/results.json (``floor_*``).

    python bench/agent_floor.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from _common import ROOT, merge_results, print_table

PROBE = r"""
import json, re, sys
def rss():
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1)) / 1024
out = {"python": rss()}
import numpy as np
out["numpy"] = rss()
import paho.mqtt.client, ssl, sqlite3, yaml
out["link"] = rss()
from pathlib import Path
from agent.config import load_isolated
cfg = load_isolated(Path("agent/examples/agent.yaml"))
assert not any(m.startswith("pydantic") for m in sys.modules)
out["config"] = rss()
import agent.runtime, agent.vision.pipeline, agent.vision.sources
out["agent"] = rss()
from agent.clips.encoder import PyAvEncoder
enc = PyAvEncoder(640, 360, 5.0)
out["clips"] = rss()
from agent.vision.detector import PersonDetector, load_interpreter_class
load_interpreter_class()
out["litert"] = rss()
d = PersonDetector(num_threads=1)
out["interpreter"] = rss()
frame = np.full((720, 1280, 3), 96, np.uint8)
d.detect(frame)
out["inference"] = rss()
print(json.dumps(out))
"""
STEPS = ("python", "numpy", "link", "config", "agent", "clips", "litert", "interpreter", "inference")


def one_round() -> dict[str, float]:
    env = {"PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    rounds = [one_round() for _ in range(args.rounds)]
    rows = []
    figures: dict[str, object] = {}
    for i, step in enumerate(STEPS):
        totals = [r[step] for r in rounds]
        adds = [r[step] - r[STEPS[i - 1]] for r in rounds] if i else totals
        med = round(statistics.median(totals), 1)
        add = round(statistics.median(adds), 1)
        rows.append((step, med, f"+{add} MB (range of the total {min(totals):.1f}-{max(totals):.1f})"))
        figures[f"floor_{step}_rss_mb"] = med
    print_table(f"RSS after each start-up step, MB ({args.rounds} rounds, median)", rows)
    figures["floor_rounds"] = args.rounds
    merge_results(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What reading the agent's config costs at start: import time, load time, memory.

The agent starts on a Pi Zero 2 W, where every import is paid at each boot and
each restart. Each figure is the median of fresh interpreters (a warm OS page
cache, so these are import costs, not SD-card reads), measured three ways:

- ``import``: the ``python -X importtime`` cumulative total of ``agent.config``
  (which also imports the vision section and its numpy);
- ``load``: wall time of ``agent.config.load`` on the shipped example, once the
  modules are imported (what validation itself costs);
- ``start_cpu``: CPU time (user + system) of both together, minus a bare
  interpreter's: what a start costs, and less swayed than wall time by
  whatever else the machine is doing;
- ``rss``: the interpreter's peak RSS after the load, minus a bare interpreter's;
- ``isolated``: how ``xl-agent run`` loads it (``load_isolated``: a child process
  validates, xlconfig.isolated): the wall time of the call, the child included,
  and the caller's own RSS after it (``isolated_rss``, now and not the peak,
  above a bare interpreter), which holds no pydantic.

Run ``python bench/config_load.py`` (figures go to bench/results.json under
``agent_config_*``); ``--label before`` keeps them under another prefix, to
compare a change against the code before it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

from _common import ROOT, merge_results, print_table

EXAMPLE = ROOT / "agent" / "examples" / "agent.yaml"
RUNS = 15

_LOAD = f"""
import resource, time
import agent.config as c
t = time.perf_counter()
c.load(c.Path({str(EXAMPLE)!r}))
r = resource.getrusage(resource.RUSAGE_SELF)
print((time.perf_counter() - t) * 1e3, r.ru_maxrss, (r.ru_utime + r.ru_stime) * 1e3)
"""
_BARE = """
import re, resource
r = resource.getrusage(resource.RUSAGE_SELF)
now = int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
print(r.ru_maxrss, (r.ru_utime + r.ru_stime) * 1e3, now)
"""
_ISOLATED = f"""
import re, sys, time
import agent.config as c
t = time.perf_counter()
c.load_isolated(c.Path({str(EXAMPLE)!r}))
ms = (time.perf_counter() - t) * 1e3
assert not any(m.startswith("pydantic") for m in sys.modules)
print(ms, int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)))
"""


def _import_us() -> int:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import agent.config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    # Top-level imports (one space after the second bar) are what this import added; nested ones are inside them.
    total = 0
    for line in out.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("  "):
            total += int(parts[1])
    return total


def _run(code: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [float(v) for v in out.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="agent_config", help="prefix of the keys in bench/results.json")
    args = parser.parse_args()
    imports = [_import_us() for _ in range(RUNS)]
    loads = [_run(_LOAD) for _ in range(RUNS)]
    bares = [_run(_BARE) for _ in range(RUNS)]
    isolated = [_run(_ISOLATED) for _ in range(RUNS)]
    bare_kb, bare_cpu = statistics.median(b[0] for b in bares), statistics.median(b[1] for b in bares)
    bare_now = statistics.median(b[2] for b in bares)
    figures = {
        f"{args.label}_isolated_ms": round(statistics.median(ms for ms, _ in isolated), 1),
        f"{args.label}_isolated_rss_mb": round((statistics.median(kb for _, kb in isolated) - bare_now) / 1024, 1),
        f"{args.label}_import_ms": round(statistics.median(imports) / 1000, 1),
        f"{args.label}_load_ms": round(statistics.median(ms for ms, _, _ in loads), 2),
        f"{args.label}_start_cpu_ms": round(statistics.median(cpu for _, _, cpu in loads) - bare_cpu, 1),
        f"{args.label}_rss_mb": round((statistics.median(kb for _, kb, _ in loads) - bare_kb) / 1024, 1),
    }
    merge_results(figures)
    print_table(
        f"agent config at start ({RUNS} fresh interpreters, medians; {sys.platform}, Python {sys.version.split()[0]})",
        [
            (f"{args.label}_import_ms", figures[f"{args.label}_import_ms"], "import agent.config (numpy included)"),
            (f"{args.label}_load_ms", figures[f"{args.label}_load_ms"], "load + validate the example"),
            (f"{args.label}_start_cpu_ms", figures[f"{args.label}_start_cpu_ms"], "CPU time of both together"),
            (f"{args.label}_rss_mb", figures[f"{args.label}_rss_mb"], "peak RSS above a bare interpreter"),
            (f"{args.label}_isolated_ms", figures[f"{args.label}_isolated_ms"], "load_isolated: child included"),
            (f"{args.label}_isolated_rss_mb", figures[f"{args.label}_isolated_rss_mb"], "its caller's RSS after"),
        ],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The whole ``xl-agent run`` process: resident memory and CPU over minutes, quiet and busy.

bench/vision.py measures the vision pipeline in a bare process; this runs the
agent as the systemd unit does (``xl-agent run --config``), against a real TLS
Mosquitto with a hub-side subscriber that sends receipts, so the outbox, link,
health, snapshots and the capture thread all do their real work. Every 5 s it
samples /proc/<pid>: VmRSS, the dirty pages of smaps_rollup (what the kernel
cannot drop: the RSS less the clean file pages of the libraries and the
model), and utime+stime for CPU over the interval. At the
end it reads /proc/<pid>/smaps and sums RSS by mapping, to show where memory
goes (the interpreter heap, anonymous arenas, each shared library).

Scenes (all at the Pi's default 1280x720, 10 fps, one TFLite thread):
  quiet-synthetic  synthetic:quiet (an empty yard with sensor noise)
  busy-synthetic   synthetic:busy
  busy-file        var/clips/vtest.avi (OpenCV's pedestrian clip, looped)
The synthetic scenes import scikit-image for their photos and the file source
imports OpenCV; a Pi's picamera2 imports neither, so their share is reported
separately (``*_lib_mb``) and also subtracted in ``*_rss_mb_without_source_libs``.

    python bench/agent_footprint.py [--minutes 10] [--scenes quiet-synthetic,busy-file] [--baseline REV]

Prints the median and range of each figure and merges them into bench/results.json
(``footprint_<scene>_*``). Scenes run at the same time, each in its own process,
broker and subscriber, so the sampling windows overlap. ``--baseline REV`` runs
every scene a second time, at the same time, with the code of git revision REV
(a throwaway worktree, same venv), and prints this checkout's RSS as a ratio
of it (``footprint_<scene>_rss_ratio_to_baseline``, with the baseline's own
figures as ``footprint_baseline_<scene>_*``).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml
from _common import ROOT, merge_results, print_table

from tests.support.broker import run_broker
from tests.support.tls import DEVICE, GROUP, Hub, make_pki, tls_config

SCENES = {
    "quiet-synthetic": "synthetic:quiet?seconds=600",
    "busy-synthetic": "synthetic:busy?seconds=600",
    "busy-file": str(ROOT / "var" / "clips" / "vtest.avi"),
}
SAMPLE_S = 5.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
SOURCE_LIBS = ("skimage", "scipy", "cv2", "opencv", "imageio", "PIL", "pillow", "tifffile", "networkx", "lazy_loader")


def write_config(work: Path, pki: Any, port: int, source: str) -> Path:
    doc = {
        "device": {"id": DEVICE, "group": GROUP, "household": "HH0123"},
        "broker": {"url": f"mqtts://127.0.0.1:{port}", "ca": str(pki.ca), "cert": str(pki.cert), "key": str(pki.key)},
        "outbox": {"path": str(work / "state" / "outbox.sqlite3")},
        "health": {"interval_s": 60},
        "camera": {"source": source, "width": 1280, "height": 720, "fps": 10},
        "vision": {"detect": {"num_threads": 1}},
        "state_dir": str(work / "state"),
    }
    path = work / "agent.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


def read_status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            fields[key] = int(value.split()[0])
    return fields


def rollup(pid: int) -> dict[str, int]:
    """/proc/<pid>/smaps_rollup in kB: Pss, and the dirty pages, which the kernel cannot drop without swap
    (a Pi has none by default); the rest of the RSS is clean file pages it may drop and read again."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        out[key] = int(value.split()[0])
    return out


def cpu_ticks(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    after = stat[stat.rindex(")") + 2 :].split()
    return int(after[11]) + int(after[12])  # utime, stime


def smaps_by_mapping(pid: int) -> dict[str, float]:
    """RSS in MB per mapping name: a library's basename, [heap], or [anon] for unnamed regions."""
    totals: dict[str, float] = defaultdict(float)
    name = "[anon]"
    header = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if header.match(line):
            parts = line.split(maxsplit=5)
            path = parts[5].strip() if len(parts) > 5 else ""
            name = Path(path).name if path.startswith("/") else (path or "[anon]")
            if path.startswith("/"):
                # Group a package's extension modules under the package (site-packages/<pkg>/...).
                m = re.search(r"site-packages/([^/]+)/", path)
                if m:
                    name = m.group(1).split(".")[0]
        elif line.startswith("Rss:"):
            totals[name] += int(line.split()[1]) / 1024
    return dict(totals)


def run_scene(
    name: str, source: str, seconds: float, out: dict[str, Any], traced: bool = False, code: Path = ROOT
) -> None:
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"xl-fp-{name}-")))
        pki = make_pki(work / "pki")
        broker = stack.enter_context(run_broker(tls_config(pki)))
        hub = Hub(pki, broker, ["xl/v1/+/+"])
        stack.callback(hub.close)
        config = write_config(work, pki, broker.port, source)
        log = open(work / "agent.log", "wb")  # noqa: SIM115 - closed by the stack
        stack.callback(log.close)
        # PYTHONPATH: the code in this checkout, whatever the venv's editable install maps.
        env = {**os.environ, "PYTHONPATH": str(code), "XL_TRACEMALLOC_OUT": str(work / "tracemalloc.txt")}
        cmd = [str(Path(sys.executable).parent / "xl-agent")]
        if traced:
            cmd = [sys.executable, str(code / "bench" / "_traced_agent.py")]
        proc = subprocess.Popen(
            [*cmd, "run", "--config", str(config)], cwd=code, stdout=log, stderr=subprocess.STDOUT, env=env
        )
        rss: list[float] = []
        dirty: list[float] = []
        cpu: list[float] = []
        threads = 0
        try:
            time.sleep(SAMPLE_S)  # start-up (imports, model load) is not the steady state
            last_t, last_c = time.monotonic(), cpu_ticks(proc.pid)
            end = last_t + seconds
            while time.monotonic() < end and proc.poll() is None:
                time.sleep(SAMPLE_S)
                now, ticks = time.monotonic(), cpu_ticks(proc.pid)
                cpu.append(100.0 * (ticks - last_c) / CLK_TCK / (now - last_t))
                last_t, last_c = now, ticks
                status = read_status(proc.pid)
                rss.append(status["VmRSS"] / 1024)
                r = rollup(proc.pid)
                dirty.append((r["Private_Dirty"] + r["Shared_Dirty"]) / 1024)
                threads = status["Threads"]
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name}: xl-agent exited {proc.returncode}: "
                    f"{(work / 'agent.log').read_text(errors='replace')[-2000:]}"
                )
            status = read_status(proc.pid)
            maps = smaps_by_mapping(proc.pid)
            if traced:
                proc.send_signal(signal.SIGUSR1)
                time.sleep(10)
                out[name + ":tracemalloc"] = (work / "tracemalloc.txt").read_text()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        events = sum(1 for t, _ in hub.messages if t.endswith("/event"))
        source_libs = sum(v for k, v in maps.items() if any(k.lower().startswith(s.lower()) for s in SOURCE_LIBS))
        out[name] = {
            "rss": rss,
            "dirty": dirty,
            "cpu": cpu,
            "peak": status["VmHWM"] / 1024,
            "threads": threads,
            "maps": maps,
            "events": events,
            "source_libs": source_libs,
        }


def summarise(name: str, r: dict[str, Any]) -> dict[str, Any]:
    rss, cpu = r["rss"], r["cpu"]
    med = statistics.median(rss)
    return {
        f"footprint_{name}_rss_mb": round(med, 1),
        f"footprint_{name}_rss_mb_range": [round(min(rss), 1), round(max(rss), 1)],
        f"footprint_{name}_peak_rss_mb": round(r["peak"], 1),
        f"footprint_{name}_dirty_mb": round(statistics.median(r["dirty"]), 1),
        f"footprint_{name}_dirty_mb_range": [round(min(r["dirty"]), 1), round(max(r["dirty"]), 1)],
        f"footprint_{name}_source_lib_mb": round(r["source_libs"], 1),
        f"footprint_{name}_rss_mb_without_source_libs": round(med - r["source_libs"], 1),
        f"footprint_{name}_cpu_pct": round(statistics.median(cpu), 1),
        f"footprint_{name}_cpu_pct_range": [round(min(cpu), 1), round(max(cpu), 1)],
        f"footprint_{name}_events": r["events"],
        f"footprint_{name}_samples": len(rss),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument(
        "--tracemalloc",
        action="store_true",
        help="rank Python allocation sites instead (figures are not merged: tracing costs memory)",
    )
    ap.add_argument("--baseline", metavar="REV", help="also run each scene with git revision REV's code, side by side")
    args = ap.parse_args()
    names = [s for s in args.scenes.split(",") if s]
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        runs = [(n, n, ROOT) for n in names]
        if args.baseline:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="xl-fp-base-"))) / "tree"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(base), args.baseline], cwd=ROOT, check=True)
            stack.callback(subprocess.run, ["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)
            runs += [(f"baseline_{n}", n, base) for n in names]
        threads = [
            threading.Thread(
                target=run_scene, args=(key, SCENES[n], args.minutes * 60, results, args.tracemalloc, code)
            )
            for key, n, code in runs
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    figures: dict[str, Any] = {"footprint_minutes": args.minutes}
    if args.baseline:
        figures["footprint_baseline_rev"] = args.baseline
    for name in [key for key, _, _ in runs]:
        if name not in results:
            print(f"{name}: no result (see the error above)")
            continue
        r = results[name]
        fig = summarise(name, r)
        figures.update(fig)
        rows = [
            (k.removeprefix(f"footprint_{name}_"), v if not isinstance(v, list) else f"{v[0]}-{v[1]}", "")
            for k, v in fig.items()
        ]
        scene = name.removeprefix("baseline_")
        if name != scene and scene in results:  # this checkout against the baseline, sample by sample in time
            ratios = [a / b for a, b in zip(results[scene]["rss"], r["rss"], strict=False)]
            figures[f"footprint_{scene}_rss_ratio_to_baseline"] = round(statistics.median(ratios), 3)
            figures[f"footprint_{scene}_rss_ratio_to_baseline_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
            rows.append(("rss ratio, this checkout / baseline", f"{statistics.median(ratios):.3f}", ""))
        title = f"xl-agent run, {name} ({SCENES[scene]}), {len(r['rss'])} samples over {args.minutes:g} min"
        print_table(title, rows)
        top = sorted(r["maps"].items(), key=lambda kv: -kv[1])[:12]
        print_table("  where the RSS is at the end (smaps, MB)", [(k, round(v, 1), "") for k, v in top])
        if args.tracemalloc:
            print(f"  largest Python allocation sites (tracemalloc):\n{results[name + ':tracemalloc']}")
    if args.tracemalloc:
        return 0
    merge_results(figures)
    return 0 if all(key in results for key, _, _ in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Fuzz soak: ≥10^5 generated inputs through every decoder of untrusted input.

The same targets as the Hypothesis tests (tests/support/fuzz_targets.py), fed by
seeded mutators for speed: the protocol codec (every channel and snapshots),
the hub's real batch processor (random topics and payloads, SQLite), the agent
and hub config parsers, the provisioning CSV row parser and the agent's
command handling. Prints cases/s per target and every contract break, and
merges ``fuzz_soak_*`` into bench/results.json.

    .venv/bin/python bench/fuzz_soak.py [--scale 1.0] [--seed 1400]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from _common import merge_results, print_table

from agent.clock import DeviceClock
from agent.commands import CommandPorts, Commands
from agent.outbox import Outbox
from agent.outbox_writer import OutboxWriter
from agent.schedule import Arming
from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.forwarding import MemoryForwardSink
from hub.db import make_engine
from hub.ingest.batch import BatchProcessor
from protocol.topics import Channel
from tests.support import fuzz_targets as targets
from tests.support.hub_db import make_fleet

# Cases per target at scale 1.0: 10^5 and a little more in total.
PLAN = {
    "codec": 60_000,
    "snapshot": 12_000,
    "ingest_batch": 15_000,  # messages, in batches of 50
    "agent_config": 5_000,
    "hub_config": 5_000,
    "csv_row": 6_000,
    "command": 3_000,
}
BATCH = 50


class Failures:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []

    def record(self, target: str, case: object, exc: BaseException) -> None:
        if len(self.items) < 50:
            self.items.append((target, repr(case)[:300], "".join(traceback.format_exception_only(exc)).strip()))


def _loop(
    name: str, n: int, rng: random.Random, one: Callable[[random.Random], object], fails: Failures, per_call: int = 1
) -> tuple[int, float]:
    started = time.perf_counter()
    done = 0
    while done < n:
        seed = rng.getrandbits(64)  # each case reproducible from its own seed: one(random.Random(seed))
        try:
            one(random.Random(seed))
        except Exception as exc:  # a contract break: keep going, report it
            fails.record(name, seed, exc)
        done += per_call
    return done, time.perf_counter() - started


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every target's case count")
    ap.add_argument("--seed", type=int, default=1400)
    args = ap.parse_args()
    # The agent logs every bad command at WARNING: 10^4 lines of expected noise.
    logging.disable(logging.WARNING)
    rng = random.Random(args.seed)
    fails = Failures()
    work = Path(tempfile.mkdtemp(prefix="xl-fuzz-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))

    engine = make_engine(f"sqlite:///{work / 'hub.sqlite3'}")
    devices = [d for devs in make_fleet(engine, groups=2, per_group=2).values() for d in devs]
    sink = MemoryForwardSink()
    directory = Directory(engine, ttl_s=3600)
    proc = BatchProcessor(engine, directory, AlertEngine(directory, AlertConfig(), sink), sink, HealthConfig())
    noon = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    box = Outbox(work / "outbox.sqlite3", max_rows=500)  # acks go here; bounded so it stays small
    cmds = Commands(
        OutboxWriter(targets.DEVICE, box, 1, DeviceClock(probe=lambda: "synced")),
        Arming(work / "arming.json", "21:00", "06:00", now=lambda: noon),
        CommandPorts(),
    )
    agent_example = targets.agent_example()
    channels = list(targets.SEEDS)

    def codec(r: random.Random) -> None:
        channel = r.choice(channels)
        roll = r.random()
        if roll < 0.7:
            payload = targets.mutate_json(r, r.choice(targets.SEEDS[channel]))
        elif roll < 0.9:
            payload = targets.mutate_bytes(r, r.choice(targets.SEEDS[r.choice(channels)]))
        else:
            payload = r.randbytes(r.randint(0, 300))
        targets.codec(channel, payload)

    def snapshot(r: random.Random) -> None:
        if r.random() < 0.5:
            head = targets.mutate_json(r, targets.SNAP_HEADER)
            # The 2-byte length prefix cannot say more than 65535; a lying prefix is a case too.
            payload = min(len(head), 0xFFFF).to_bytes(2, "big") + head + targets.JPEG
        else:
            payload = targets.mutate_bytes(r, targets.SNAP_SEED)
        targets.codec(Channel.SNAP, payload)

    def ingest(r: random.Random) -> None:
        messages = []
        for _ in range(BATCH):
            channel = r.choice(channels)
            payload = targets.mutate_json(r, r.choice(targets.SEEDS[channel]))
            if r.random() < 0.5:
                topic = targets.random_topic(r, devices)
            else:
                topic = f"xl/v1/{r.choice(devices)}/{r.choice(['event', 'health', 'state', 'ack', 'snap'])}"
            messages.append((topic, payload))
        targets.batch(proc, messages, int(time.time() * 1000))

    plan: list[tuple[str, Callable[[random.Random], object], int]] = [
        ("codec", codec, 1),
        ("snapshot", snapshot, 1),
        ("ingest_batch", ingest, BATCH),
        ("agent_config", lambda r: targets.agent_config_doc(targets.random_doc(r, agent_example)), 1),
        ("hub_config", lambda r: targets.hub_config_doc(targets.random_doc(r, targets.HUB_EXAMPLE)), 1),
        ("csv_row", lambda r: targets.csv_row(targets.random_row(r)), 1),
        ("command", lambda r: targets.command(cmds, targets.mutate_json(r, r.choice(targets.SEEDS[Channel.CMD]))), 1),
    ]
    rows: list[tuple[str, object, str]] = []
    total = 0
    elapsed = 0.0
    for name, one, per_call in plan:
        n = max(per_call, int(PLAN[name] * args.scale))
        done, secs = _loop(name, n, rng, one, fails, per_call)
        total += done
        elapsed += secs
        rows.append((name, done, f"cases, {done / secs:,.0f}/s"))
    box.close()
    engine.dispose()
    rows.append(("total", total, f"cases in {elapsed:.1f} s, {total / elapsed:,.0f}/s"))
    rows.append(("failures", len(fails.items), "contract breaks (should be 0)"))
    print_table(f"Fuzz soak (seed {args.seed})", rows)
    for target, case, error in fails.items:
        print(f"  FAIL {target}: {error}\n       case seed: {case}")
    merge_results(
        {
            "fuzz_soak_cases": total,
            "fuzz_soak_cases_per_s": round(total / elapsed, 1),
            "fuzz_soak_failures": len(fails.items),
            "fuzz_soak_seed": args.seed,
        }
    )
    return 1 if fails.items else 0


if __name__ == "__main__":
    sys.exit(main())

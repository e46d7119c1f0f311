"""Ingest while retention prunes, on PostgreSQL with 10^7 stored events (issue 21; figures, not pass/fail).

The hub's real ingest path, as ``xl-hub run`` builds it (``bench/_ingest_load.hub_for``:
BatchProcessor → validate, one transaction with events, forward-outbox rows for
person events, commit), fed batches of 1,000 event phases directly (no broker:
the figure is the database's share, the part pruning competes for). Three modes,
interleaved round by round so drift of this shared machine hits them alike:

- ``off``: nothing prunes;
- ``default``: retention as shipped (batch 2000, a pause of 0.5 s or 4 times the
  batch's own time) working through a backlog of millions of events past 365 days;
- ``continuous``: the same with no pause at all, the worst case.

The figure is each mode's ingest rate over ``off`` (median of the rounds, and
their range); the goal is ≥ 0.90 for ``default``. The 10^7-event table is made
in SQL (generate_series, indexes rebuilt after the load) in a schema of its own
in the ``test`` database, dropped at the end unless ``--keep``; ``--schema``
reuses a kept one. Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from typing import Any

from _common import drop_pg, merge_results, pg_schema, print_table  # also puts the project on sys.path
from _ingest_load import build_fleet, hub_for, now_ms
from sqlalchemy import create_engine, func, select, text

from hub.config_retention import RetentionConfig
from hub.core.inbound import Inbound
from hub.db.schema_ops import events
from hub.retention.prune import DAY_MS, Pruner
from protocol.codec import encode
from protocol.messages import Event
from protocol.topics import event_topic
from sim.ports import free_port

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROWS = 10_000_000
SPAN_DAYS = 500  # a quarter of the fill is past 365 days: a backlog pruning cannot finish during the bench
BATCH = 1000  # ingest.batch_max
BATCHES_PER_ROUND = 40
ROUNDS = 7
MODES = ("off", "default", "continuous")


def fill(url: str, rows: int) -> None:
    """``rows`` motion events over ``SPAN_DAYS``, round-robin over the registered devices."""
    engine = create_engine(url)
    t0 = now_ms() - SPAN_DAYS * DAY_MS
    step = SPAN_DAYS * DAY_MS // rows
    with engine.begin() as conn:
        # Indexes are rebuilt after the load: building them once is minutes faster than 10^7 inserts into them.
        conn.execute(text("ALTER TABLE events DROP CONSTRAINT uq_event_phase"))
        conn.execute(text("DROP INDEX ix_events_time"))
        conn.execute(
            text(
                "INSERT INTO events (device_id, event_id, phase, kind, score, zone, has_snapshot, device_time_ms,"
                " received_ms, time_ms, time_trusted, household_id, no_alert)"
                " SELECT d.ids[1 + g % d.n], g / d.n, 'start', 'motion', 40, 'gate', false, t, t, t, true, NULL, false"
                " FROM (SELECT array_agg(id ORDER BY id) AS ids, count(*)::int AS n FROM devices) d,"
                " generate_series(0, :rows - 1) g, LATERAL (SELECT :t0 + g::bigint * :step AS t) tt"
            ),
            {"rows": rows, "t0": t0, "step": step},
        )
    with engine.begin() as conn:
        conn.execute(text("SET maintenance_work_mem = '512MB'"))
        conn.execute(text("ALTER TABLE events ADD CONSTRAINT uq_event_phase UNIQUE (device_id, event_id, phase)"))
        conn.execute(text("CREATE INDEX ix_events_time ON events (time_ms)"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE events"))
    engine.dispose()


class Rig:
    def __init__(self, url: str) -> None:
        self.hub = hub_for(url, free_port(), "bench-retention")
        self.hub.directory.reload()
        self.devices = sorted(d.device_id for d in self.hub.directory.all_devices())
        self.boot = 1

    def batch(self) -> list[Inbound]:
        """1,000 phases as visits send them: start and end, half of the visits a person (an outbox row each)."""
        self.boot += 1
        t = now_ms()
        out = []
        for i in range(BATCH):
            visit, end = divmod(i, 2)
            person = visit % 2 == 1
            payload = encode(
                Event(
                    event_id=(self.boot << 32) | visit,
                    kind="person" if person else "motion",
                    phase="end" if end else "start",
                    time_ms=t,
                    score=45 if person else 30,  # under the alert threshold: alerts are not what this measures
                    bbox=(250, 100, 500, 900) if person else None,
                    zone="gate",
                    duration_s=12 if end else None,
                )
            )
            dev = self.devices[(self.boot * 7 + visit) % len(self.devices)]
            out.append(Inbound(event_topic(dev), payload, mid=i + 1, qos=1, received_ms=t))
        return out

    def round(self) -> float:
        batches = [self.batch() for _ in range(BATCHES_PER_ROUND)]  # encoded before the clock starts
        start = time.perf_counter()
        for b in batches:
            self.hub.worker.processor.process(b)
        return BATCH * BATCHES_PER_ROUND / (time.perf_counter() - start)


class Pruning:
    """A pruner thread per mode, each held at its pause while its mode is not the one measured."""

    def __init__(self, url: str, pause_s: float | None) -> None:
        # None: no pause at all, not even the pruner's own YIELD after a slow batch (the worst case).
        self.engine = create_engine(url, pool_size=2)
        self.on = threading.Event()
        self.stop = threading.Event()
        self.batches = 0
        self.honour = pause_s is not None
        self.pruner = Pruner(self.engine, RetentionConfig(pause_s=pause_s or 0.0), wait=self._wait)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _wait(self, seconds: float) -> bool:
        self.batches += 1
        if seconds and self.honour:
            time.sleep(seconds)
        while not self.on.wait(0.2):
            if self.stop.is_set():
                return True
        return self.stop.is_set()

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.on.wait()
            if not self.stop.is_set():
                self.pruner.run()

    def close(self) -> None:
        self.stop.set()
        self.on.set()
        self.thread.join(30)
        self.engine.dispose()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=ROWS)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--schema", help="reuse this kept schema (made by an earlier --keep run)")
    ap.add_argument("--keep", action="store_true", help="keep the schema for a later --schema run")
    args = ap.parse_args()
    if args.schema:
        name, url = args.schema, f"{PG}?options=-csearch_path%3D{args.schema}"
    else:
        name, url = pg_schema("xl_bench_ret_")
    try:
        if not args.schema:
            build_fleet(url)
            t = time.monotonic()
            fill(url, args.rows)
            print(f"filled {args.rows:,} events in {time.monotonic() - t:.0f} s")
        return measure(url, args.rounds)
    finally:
        if not args.keep:
            drop_pg(name)


def measure(url: str, rounds: int) -> int:
    probe = create_engine(url)

    def stored() -> tuple[int, int]:
        with probe.connect() as conn:
            cut = now_ms() - 365 * DAY_MS
            n = conn.execute(select(func.count()).select_from(events)).scalar_one()
            old = conn.execute(select(func.count()).select_from(events).where(events.c.time_ms < cut)).scalar_one()
        return int(n), int(old)

    total, old = stored()
    print(f"events stored: {total:,}, past 365 days: {old:,}")
    rig = Rig(url)
    rig.round()  # warm: the registry cache, prepared statements, the outbox sink row
    pruners = {"default": Pruning(url, RetentionConfig().pause_s), "continuous": Pruning(url, None)}
    rates: dict[str, list[float]] = {m: [] for m in MODES}
    deleted: dict[str, int] = {m: 0 for m in pruners}
    try:
        for _ in range(rounds):
            for mode in MODES:
                p = pruners.get(mode)
                before = p.batches if p else 0
                if p:
                    p.on.set()
                    time.sleep(0.3)  # its first batch is under way
                rates[mode].append(rig.round())
                if p:
                    p.on.clear()
                    deleted[mode] += (p.batches - before) * 2000
                    time.sleep(1.0)  # a batch still in flight ends before the next mode
    finally:
        for p in pruners.values():
            p.close()
    _, old_after = stored()
    probe.dispose()
    base = statistics.median(rates["off"])
    figures: dict[str, Any] = {
        "retention_ingest_rows_stored": total,
        "retention_ingest_events_per_s_off": round(base),
        "retention_ingest_rounds": rounds,
        "retention_ingest_where": "this 2-core dev machine, PostgreSQL 127.0.0.1, hub ingest path without broker",
    }
    rows: list[tuple[str, Any, str]] = [("rate, nothing pruning", round(base), "events/s (median)")]
    for mode in pruners:
        ratios = [r / b for r, b in zip(rates[mode], rates["off"], strict=True)]
        med = statistics.median(ratios)
        figures[f"retention_ingest_ratio_{mode}"] = round(med, 3)
        figures[f"retention_ingest_ratio_{mode}_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
        figures[f"retention_ingest_pruned_{mode}"] = deleted[mode]
        rows.append((f"ratio {mode}", med, f"range {min(ratios):.3f}-{max(ratios):.3f}, ~{deleted[mode]:,} pruned"))
    rows.append(("past 365 days, after", old_after, f"of {old:,} before"))
    print_table(f"ingest while pruning, {total:,} events stored ({rounds} interleaved rounds)", rows)
    merge_results(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

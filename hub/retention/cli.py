"""``xl-hub retention run [--dry-run]``: one pass now, per class, clips included.

The hub runs the same pass every ``retention.interval_s``; this is for an
operator who wants to see what would go before enabling it on an old
database (``--dry-run`` deletes nothing and does not pause), or to catch up.
Clips are pruned by their own rules (hub/clips/retention.py) when
``clips.enabled``; with ``--db`` alone the defaults of every key apply.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from hub.cli_options import add_source
from hub.cli_output import print_rows
from hub.clips import retention as clip_retention
from hub.config import HubConfig
from hub.retention.job import record
from hub.retention.prune import Pruner


def add_commands(sub: Any) -> None:
    ret = sub.add_parser("retention", help="delete personal data past its age, per data class (issue 21)")
    rs = ret.add_subparsers(dest="retention_command", metavar="ACTION", required=True)
    run = rs.add_parser("run", help="one retention pass now (the hub runs one every retention.interval_s)")
    add_source(run)
    run.add_argument("--dry-run", action="store_true", help="show what would be deleted, per class; delete nothing")
    run.add_argument("--json", action="store_true", help="print JSON (one array) instead of a table")


def dispatch(engine: Engine, cfg: HubConfig, args: argparse.Namespace) -> int:
    rows = run_pass(engine, cfg, dry_run=args.dry_run)
    print_rows(rows, args.json)
    return 0


def run_pass(engine: Engine, cfg: HubConfig, *, dry_run: bool, now_s: float | None = None) -> list[dict[str, Any]]:
    """One pass; a row per class: its age limit, what is past it, deleted (or would be), held."""
    now = time.time() if now_s is None else now_s
    done = Pruner(engine, cfg.retention, clock=lambda: now).run(dry_run=dry_run)
    r = cfg.retention
    days = {"events": r.events_days, "snapshots": r.snapshots_days, "health": r.health_days, "audit": r.audit_days}
    verb = "would_delete" if dry_run else "deleted"
    rows: list[dict[str, Any]] = [
        {
            "class": name,
            "keep_days": days[name],
            "past_age": t.due,
            verb: t.deleted,
            "held": t.held,
            "batches": t.batches,
        }
        for name, t in done.tallies.items()
    ]
    c = cfg.clips
    now_ms = int(now * 1000)
    if dry_run or not c.enabled:
        n, _alert = clip_retention.due(engine, c.keep_days, c.keep_days_alert, now_ms)
        # Without clips.enabled nothing runs the clip job: show it, do not delete (the files' path may be elsewhere).
        rows.append(_clip_row(c.keep_days, c.keep_days_alert, n, verb, n if dry_run else 0))
    else:
        pruned = clip_retention.prune(
            engine, Path(c.path), c.keep_days, c.max_bytes, now_ms, keep_days_alert=c.keep_days_alert
        )
        gone = pruned.by_age + pruned.by_bytes  # by_bytes: over clips.max_bytes, younger than their age
        rows.append(_clip_row(c.keep_days, c.keep_days_alert, pruned.by_age, verb, gone))
    if not dry_run and done.deleted:
        record(engine, done, now_ms)
    return rows


def _clip_row(keep: float, keep_alert: float, due: int, verb: str, gone: int) -> dict[str, Any]:
    return {
        "class": "clips",
        "keep_days": f"{keep:g} ({keep_alert:g} alert)",
        "past_age": due,
        verb: gone,
        "held": 0,  # clips hold nothing past its age: alert clips have their own, longer one
        "batches": -(-gone // clip_retention.BATCH),
    }

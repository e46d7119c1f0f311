"""``xl-hub rollout create|status|pause|resume|abort``."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from typing import Any

from sqlalchemy import Engine

from hub.cli_options import add_source
from hub.rollout import status as st
from hub.rollout import store


def add_commands(sub: Any) -> None:
    ro = sub.add_parser("rollout", help="roll an agent release out to the fleet, cohort by cohort (issue 17)")
    rs = ro.add_subparsers(dest="rollout_command", metavar="ACTION", required=True)
    c = rs.add_parser("create", help="make a rollout (active at once; the hub's next tick starts cohort 1)")
    add_source(c)
    c.add_argument("--version", required=True, help="the release, as published in the TUF repository")
    c.add_argument(
        "--cohort",
        action="append",
        required=True,
        metavar="SPEC",
        help="in order: LABEL:ID,ID (e.g. installers:…), village:NAME, township:NAME, group:ID, percent:N, all",
    )
    c.add_argument("--min-success", type=float, default=90.0, help="%% of a cohort committed before the next (90)")
    c.add_argument("--max-failure", type=float, default=5.0, help="%% of a cohort failed that halts the rollout (5)")
    c.add_argument("--window", help="send commands only HH:MM-HH:MM county time, e.g. 01:00-05:00")
    c.add_argument("--downgrade", action="store_true", help="the release is older than what devices run")
    c.add_argument("--by", help="who, for the audit log (default: the login name)")
    s = rs.add_parser("status", help="rollouts, or one rollout per cohort and village with failures")
    add_source(s)
    s.add_argument("id", nargs="?", type=int)
    s.add_argument("--json", action="store_true")
    for name, what in (("pause", "stop sending"), ("resume", "carry on"), ("abort", "end for good")):
        p = rs.add_parser(name, help=what)
        add_source(p)
        p.add_argument("id", type=int)
        p.add_argument("--reason", help="for the audit log")
        p.add_argument("--by", help="who, for the audit log (default: the login name)")


def dispatch(engine: Engine, args: argparse.Namespace) -> int:
    now = int(time.time() * 1000)
    actor = getattr(args, "by", None) or getpass.getuser()
    try:
        if args.rollout_command == "create":
            new = store.NewRollout(
                version=args.version,
                cohorts=args.cohort,
                min_success=args.min_success,
                max_failure=args.max_failure,
                window=args.window,
                downgrade=args.downgrade,
            )
            rid = store.create(engine, new, actor, now)
            with engine.connect() as conn:
                detail = st.rollout_detail(conn, rid)
            assert detail is not None
            print(f"rollout {rid} created")
            print("\n".join(st.status_text(detail)))
            return 0
        if args.rollout_command == "status":
            return _status(engine, args)
        getattr(store, args.rollout_command)(engine, args.id, actor, now, args.reason)
        print(f"rollout {args.id}: {args.rollout_command} done")
        return 0
    except store.RolloutError as exc:
        print(f"xl-hub rollout: {exc}", file=sys.stderr)
        return 1


def _status(engine: Engine, args: argparse.Namespace) -> int:
    with engine.connect() as conn:
        if args.id is None:
            rows = st.list_rollouts(conn)
            if args.json:
                print(json.dumps(rows, ensure_ascii=False, default=str))
            for r in [] if args.json else rows:
                print(
                    f"{r['id']:>4}  {r['version']:<12} {r['status']:<8} {r['committed']:>5}/{r['devices']} committed"
                    f"  {r['failed']} failed" + (f"  ({r['reason']})" if r["reason"] else "")
                )
            return 0
        detail = st.rollout_detail(conn, args.id)
    if detail is None:
        print(f"xl-hub rollout: no rollout {args.id}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(detail, ensure_ascii=False, default=str))
    else:
        print("\n".join(st.status_text(detail)))
    return 0

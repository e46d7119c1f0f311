"""``xl-hub``: the county server."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from hub import __version__
from hub.cli_options import add_source, add_top_level, check_source
from hub.cli_output import print_rows

ROLE = (
    "xl-hub runs at the county. It ingests every device's events, snapshots, "
    "heartbeats and presence from the MQTT broker (idempotently, committing to "
    "SQLite or PostgreSQL before acknowledging), keeps the registry of townships, "
    "villages, 联防组 groups, households and devices, tracks fleet health, raises "
    "十户联防 alerts to a household's neighbours when a panic button is pressed or "
    "a person is seen during armed hours, forwards events to the county 综治 "
    "platform (GA/T 1400 视图库 and a signed webhook), and serves the operators' "
    "console and /metrics."
)


def _list_args(p: argparse.ArgumentParser) -> None:
    add_source(p)
    p.add_argument("--json", action="store_true", help="print JSON (one array) instead of a table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xl-hub", description=ROLE)
    parser.add_argument("--version", action="version", version=f"xl-hub {__version__}")
    add_top_level(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run ingest, health watcher and alert engine until SIGTERM")
    add_source(run, config_help="hub YAML config", db=False)
    run.add_argument(
        "--retire",
        action="store_true",
        help="on stop, end this worker's MQTT session (when removing a worker for good)",
    )

    db = sub.add_parser("db", help="database maintenance")
    dbsub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    add_source(db, db=True)
    add_source(dbsub.add_parser("upgrade", help="apply pending schema migrations (every room's branch)"))
    add_source(
        dbsub.add_parser(
            "status",
            help="each room's migration branch: where the database is, what is pending (exit 1 unless at every head)",
        )
    )

    dev = sub.add_parser("devices", help="list devices with presence and open alarms")
    _list_args(dev)
    dev.add_argument("--offline", action="store_true", help="only devices that are offline")
    dev.add_argument("--status", choices=["active", "revoked"])

    ev = sub.add_parser("events", help="list the latest events")
    _list_args(ev)
    ev.add_argument("--device")
    ev.add_argument("--kind", choices=["motion", "person", "panic", "tamper"])
    ev.add_argument("--limit", type=int, default=50)

    al = sub.add_parser("alerts", help="list 十户联防 alerts with response times")
    _list_args(al)
    al.add_argument("--open", action="store_true", help="only alerts not yet acknowledged")
    al.add_argument("--limit", type=int, default=50)

    am = sub.add_parser("alarms", help="list operator alarms (open ones by default)")
    _list_args(am)
    am.add_argument("--all", action="store_true", help="include cleared alarms")

    _list_args(sub.add_parser("rejections", help="rejected messages by reason"))
    from hub.console.cli import add_commands as add_console_commands

    add_console_commands(sub)
    from hub.rollout.cli import add_commands as add_rollout_commands

    add_rollout_commands(sub)
    from hub.configs.cli import add_commands as add_config_commands

    add_config_commands(sub)
    from hub.retention.cli import add_commands as add_retention_commands

    add_retention_commands(sub)
    return parser


def _engine(args: argparse.Namespace) -> Any:
    from hub.config import load_config
    from hub.db import make_engine

    url = args.db if getattr(args, "db", None) else load_config(args.config).database_url
    return make_engine(url)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    check_source(parser, args)
    from hub.config import ConfigError

    try:
        return _dispatch(args)
    except ConfigError as exc:
        for line in exc.lines():  # one line per problem, each naming its key
            print(f"xl-hub: config error: {line}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    from hub import reports

    if args.command in ("console", "user"):
        from hub.console.cli import dispatch as console_dispatch

        return console_dispatch(args)

    if args.command == "run":
        from hub.config import load_config
        from hub.service import Hub, SchemaNotReady, config_push_extensions, ota_extensions, retention_extensions

        cfg = load_config(args.config)
        logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per platform request is noise
        try:
            hub = Hub.from_config(cfg)
            if "console" in cfg.plugins:  # the operators' console shares the hub's engine and MQTT client
                from hub.console.server import for_hub

                console = for_hub(cfg, hub.engine, hub.worker.transport)
                if console is not None:
                    hub.extensions.append(console)
            hub.extensions.extend(ota_extensions(cfg, hub))  # the TUF repository server, rollouts
            hub.extensions.extend(retention_extensions(cfg, hub))  # pruning by age (issue 21)
            hub.extensions.extend(config_push_extensions(hub))  # queued by xl-hub config push (issue 20)
            from hub.service import escalation_extensions

            hub.extensions.extend(escalation_extensions(cfg, hub))  # escalation chains (issue 21)
            hub.run_forever()
        except SchemaNotReady as exc:
            print(f"xl-hub: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "forget-session":
        from hub.config import load_config
        from hub.mqtt.client import forget_session

        cfg = load_config(args.config)
        forget_session(cfg.mqtt, args.client_id)
        print(f"session {args.client_id or cfg.mqtt.client_id} ended at {cfg.mqtt.host}:{cfg.mqtt.port}")
        return 0
    engine = _engine(args)
    try:
        if args.command == "db":
            from hub.db.cli import db_command

            return db_command(engine, args.db_command)
        from hub.db import schema_problem

        problem = schema_problem(engine)
        if problem is not None:
            print(f"xl-hub: {problem}", file=sys.stderr)
            return 1
        if args.command == "rollout":
            from hub.rollout.cli import dispatch as rollout_dispatch

            return rollout_dispatch(engine, args)
        if args.command == "retention":
            from hub.config import load_config, parse_config
            from hub.retention.cli import dispatch as retention_dispatch

            cfg = load_config(args.config) if args.config else parse_config({"database": {"url": args.db}})
            return retention_dispatch(engine, cfg, args)
        if args.command == "config":
            from hub.configs.cli import dispatch as config_dispatch

            return config_dispatch(engine, args)
        if args.command == "devices":
            rows = reports.device_report(engine, offline_only=args.offline, status=args.status)
        elif args.command == "events":
            rows = reports.event_report(engine, device=args.device, kind=args.kind, limit=args.limit)
        elif args.command == "alerts":
            rows = reports.alert_report(engine, open_only=args.open, limit=args.limit)
        elif args.command == "alarms":
            rows = reports.alarm_report(engine, open_only=not args.all)
        else:
            rows = reports.rejection_report(engine)
        print_rows(rows, args.json)
        return 0
    finally:
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())

"""``xl-hub console`` and ``xl-hub user add``: argument parsing and dispatch.

Imported by hub/cli.py; kept free of FastAPI imports so that the rest of the
CLI starts fast and works on a hub built without the console.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from hub.cli_options import add_source
from hub.console.tables import ROLES


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    con = sub.add_parser("console", help="serve the operators' web console alone (without ingest)")
    add_source(con, config_help="hub YAML config (database, mqtt, console sections)", db=False)

    user = sub.add_parser("user", help="console operator accounts")
    add_source(user)
    usub = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    add = usub.add_parser("add", help="create a user, or reset an existing user's password and role")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument(
        "--password", help="the password (default: read from stdin if piped, else prompt); beware shell history"
    )
    add_source(add)
    dis = usub.add_parser("disable", help="disable a user and end their sessions")
    dis.add_argument("name")
    add_source(dis)


def _password(args: argparse.Namespace) -> str:
    if args.password:
        return str(args.password)
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ValueError("the passwords differ")
    return first


def dispatch(args: argparse.Namespace) -> int:
    import logging

    from hub.config import load_config

    if args.command == "console":
        from hub.console.server import run_standalone

        cfg = load_config(args.config)
        logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return run_standalone(cfg)

    from hub.console import auth
    from hub.db import make_engine, schema_problem

    url = args.db if args.db else load_config(args.config).database_url
    engine = make_engine(url)
    try:
        # Accounts need only the console's own tables, not every room at its head.
        problem = schema_problem(engine, branches=("console",))
        if problem is not None:
            print(f"xl-hub: {problem}", file=sys.stderr)
            return 1
        if args.user_command == "add":
            try:
                auth.add_user(engine, args.name, args.role, _password(args))
            except ValueError as exc:
                print(f"xl-hub: {exc}", file=sys.stderr)
                return 2
            print(f"user {args.name} saved (role {args.role})")
            return 0
        if not auth.set_disabled(engine, "cli", args.name, True):
            print(f"xl-hub: no user {args.name}", file=sys.stderr)
            return 1
        print(f"user {args.name} disabled")
        return 0
    finally:
        engine.dispose()

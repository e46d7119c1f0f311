"""``xl-hub``'s --config and --db, before the command or after it.

Users of git and docker write global options before the command
(``xl-hub --config hub.yaml devices``). argparse copies a command's defaults
over what the top-level parser found, so each command's copies default to
SUPPRESS: given after the command they win, absent they leave the value given
before it. Which of the two a command needs is therefore checked after
parsing (``check_source``) rather than by argparse's ``required``.
"""

from __future__ import annotations

import argparse

CONFIG_HELP = "hub YAML config (its database.url is used)"
DB_HELP = "database URL, e.g. sqlite:///var/hub.sqlite3 or postgresql://…"
# These read more of the config than the database URL (mqtt, console, forwarding).
CONFIG_ONLY = frozenset({"run", "console"})


def add_top_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help=CONFIG_HELP + "; also accepted after the command")
    parser.add_argument("--db", default=None, help=DB_HELP + "; also accepted after the command")


def add_source(parser: argparse.ArgumentParser, *, config_help: str = CONFIG_HELP, db: bool = True) -> None:
    """A command's own --config (and --db): one of them, from either place, is required."""
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--config", default=argparse.SUPPRESS, help=config_help)
    if db:
        src.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)


def check_source(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The errors argparse gave when the options had to follow the command; exits 2 like them."""
    config, db = args.config, args.db
    if args.command in CONFIG_ONLY:
        if db is not None:
            parser.error(f"argument --db: not allowed with {args.command}; it needs --config")
        if config is None:
            parser.error("the following arguments are required: --config")
    elif config is not None and db is not None:
        parser.error("argument --db: not allowed with argument --config")
    elif config is None and db is None:
        parser.error("one of the arguments --config --db is required")

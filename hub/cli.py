"""``xl-hub``: the county server."""

from __future__ import annotations

import argparse
import sys

from hub import __version__

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xl-hub", description=ROLE)
    parser.add_argument("--version", action="version", version=f"xl-hub {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``xl-agent``: the program each household Raspberry Pi runs."""

from __future__ import annotations

import argparse
import sys

from agent import __version__

ROLE = (
    "xl-agent runs on each household's Raspberry Pi. It watches the camera, finds "
    "motion on the low-resolution luma stream, runs TFLite person detection only "
    "where and when something moves, turns detections into one event per visit, "
    "keeps every event in a durable outbox on the SD card, and publishes it over "
    "MQTT/TLS to the county hub when the link is up. It also drives the 十户联防 "
    "buzzer, LED and panic button, and answers the hub's commands."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xl-agent", description=ROLE)
    parser.add_argument("--version", action="version", version=f"xl-agent {__version__}")
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

"""``xl-agent``: the program each household Raspberry Pi runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent import __version__
from agent.update.commandline import add_update_command
from agent.vision.replay_cli import add_replay_command

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
    # Accepted before the command too, as in git and docker. Its own dest, because
    # argparse would overwrite it with the command's default; main() merges the two.
    parser.add_argument("--config", dest="config_before", type=Path, metavar="FILE",
                        help="agent YAML config; also accepted after the command")  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_runtime_commands(sub)
    add_replay_command(sub)
    add_update_command(sub)
    return parser


def _add_runtime_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``run`` and ``check`` (agent.runtime, agent.check)."""
    from agent.config import DEFAULT_PATH

    run = sub.add_parser("run", help="run the device: camera, detection, outbox, MQTT link, GPIO")
    run.add_argument("--config", type=Path, help=f"config (default {DEFAULT_PATH})")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(handler=_run)
    check = sub.add_parser("check", help="installer check: config, certificates, camera, model, broker")
    check.add_argument("--config", type=Path, help=f"config (default {DEFAULT_PATH})")
    check.add_argument("--skip", action="append", default=[], choices=["camera", "model", "broker"])
    check.set_defaults(handler=_check)
    for p in (run, check):
        p.set_defaults(config_fallback=DEFAULT_PATH)


def _run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from agent import memory
    from agent.runtime import run

    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(__name__).debug("malloc: %s", ", ".join(memory.tune()) or "defaults")
    stop = threading.Event()
    # SIGTERM (systemd stop) and SIGINT end the run cleanly: open visits end, the link says offline.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return run(args.config, stop)


def _check(args: argparse.Namespace) -> int:
    from agent.check import run_checks

    return run_checks(args.config, sys.stdout, frozenset(args.skip))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    # Given after the command it wins; else before it; else the command's default (replay has none).
    if getattr(args, "config", None) is None:
        args.config = args.config_before or getattr(args, "config_fallback", None)
    handler = getattr(args, "handler", None)
    if handler is not None:
        return int(handler(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

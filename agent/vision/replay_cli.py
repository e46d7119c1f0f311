"""The ``xl-agent replay`` subcommand: argument parsing and output files."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any, TextIO

REPLAY_HELP = (
    "Run the on-device vision pipeline (motion, person detection, visits) over a "
    "recording, without MQTT: a video file, an image folder, or synthetic:<scene> "
    "(quiet, walkthrough, light_switch, cat, coffee, vegetation, busy, dusk; options "
    "as synthetic:walkthrough?seconds=20&fps=10&width=1280&height=720&seed=0). "
    "Writes one JSON line per event (id, kind, phase, ts = seconds of source time, "
    "score = 0..1 confidence, bbox = normalised x1,y1,x2,y2 floats, plus the wire "
    "form) and a summary."
)


def add_replay_command(commands: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = commands.add_parser(
        "replay", help="run the vision pipeline over a recording", description=REPLAY_HELP
    )
    p.add_argument("source", metavar="SOURCE", help="video file, image folder or synthetic:<scene>")
    p.add_argument("--config", type=Path, metavar="FILE", help="agent YAML; only its vision: section is used")
    p.add_argument("--events-out", metavar="FILE.jsonl", help="write events as JSON lines here ('-' for stdout)")
    p.add_argument("--summary-json", type=Path, metavar="FILE", help="write the summary as JSON here")
    p.add_argument("--realtime", action="store_true", help="pace frames to the source fps (default: flat out)")
    p.add_argument("--fps", type=float, help="frame rate of an image folder (default 10), or override a file's")
    p.add_argument("--threads", type=int, help="TFLite threads (default: vision.detect.num_threads)")
    p.add_argument("--snapshots", type=Path, metavar="DIR", help="also save each event snapshot JPEG here")
    p.set_defaults(handler=run_replay_command)
    return p


def run_replay_command(args: argparse.Namespace) -> int:
    from agent.config_vision import VisionConfig, load_vision_config
    from agent.vision.replay import build_detector, human_summary, run_replay
    from agent.vision.sources import open_source
    from xlconfig import ConfigError

    def fail(message: str) -> int:
        print(f"xl-agent replay: error: {message}", file=sys.stderr)
        return 2

    try:
        config = load_vision_config(args.config) if args.config else VisionConfig()
    except ConfigError as exc:
        return fail("\n".join(exc.lines()))  # one line per problem
    try:
        source = open_source(args.source, fps=args.fps)
        detector = build_detector(config, num_threads=args.threads)
    except (FileNotFoundError, KeyError, ValueError, RuntimeError) as exc:
        return fail(str(exc).strip("'\""))

    with contextlib.ExitStack() as stack:
        out: TextIO | None = None
        if args.events_out == "-":
            out = sys.stdout
        elif args.events_out:
            out = stack.enter_context(open(args.events_out, "w", encoding="utf-8"))
        try:
            result = run_replay(
                source,
                config,
                detector=detector,
                events_out=out,
                snapshots_dir=args.snapshots,
                realtime=args.realtime,
            )
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            return fail(str(exc))
    summary = {**result.summary, "source": args.source}
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    # Keep stdout clean for the JSONL when it goes there.
    print(human_summary(summary), file=sys.stderr if args.events_out == "-" else sys.stdout)
    return 0

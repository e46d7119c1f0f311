"""``xl-hub config push|history``: push a vision config to a device or a village, and show a device's history.

``push`` writes the push (its revision, the document, who) as ``queued``, and
the running hub (``xl-hub run``) sends it through its own connection within
about a second. The command does not connect to the broker itself: the broker
names every client after its certificate (``use_username_as_clientid``), so a
second connection with the hub's certificate would close the hub's own, and
with a clean start end its session. A command the broker has accepted reaches
an offline device from its persistent session (QoS 1) when it reconnects; the
history says ``queued``, then ``sent`` until the device acks.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine

from hub.cli_options import add_source
from hub.cli_output import print_rows
from hub.configs.service import ConfigPushes, PushResult


def add_commands(sub: Any) -> None:
    cf = sub.add_parser("config", help="push zones, masks and profiles to devices; their config history (issue 20)")
    cs = cf.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    p = cs.add_parser("push", help="send a vision config (masks, zones, required_zones, profiles) as a command")
    add_source(p)
    p.add_argument("device", nargs="?", help="the 20-digit device ID (or --village)")
    p.add_argument("--village", type=int, help="every active device of this village (its id), one push each")
    p.add_argument("--file", required=True, type=Path, help="YAML or JSON: the vision keys, or a vision: section")
    p.add_argument("--template", help="the template's name, kept in the history")
    p.add_argument("--by", help="who, for the history (default: the login name)")
    h = cs.add_parser("history", help="a device's config pushes, newest first, with the device's answers")
    add_source(h)
    h.add_argument("device")
    h.add_argument("--limit", type=int, default=50)
    h.add_argument("--json", action="store_true", help="print JSON (with each document) instead of a table")


def load_vision(path: Path) -> Any:
    """The ``vision`` object of a file: its top level, or its ``vision:`` section (a whole agent config)."""
    text = path.read_text(encoding="utf-8")
    doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(doc, dict) and set(doc) == {"vision"}:
        return doc["vision"]
    return doc


def dispatch(engine: Engine, args: argparse.Namespace) -> int:
    if args.config_command == "history":
        rows = ConfigPushes(engine, None).history(args.device, args.limit)
        if not args.json:
            rows = [{k: v for k, v in r.items() if k != "doc"} for r in rows]
        print_rows(rows, args.json)
        return 0
    if (args.device is None) == (args.village is None):
        print("xl-hub config push: give a DEVICE or --village ID, not both", file=sys.stderr)
        return 2
    try:
        vision = load_vision(args.file)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"xl-hub config push: {args.file}: {exc}", file=sys.stderr)
        return 1
    pushes = ConfigPushes(engine, None, queue=True)
    user = args.by or getpass.getuser()
    try:
        if args.village is not None:
            results = pushes.push_village(args.village, vision, user, args.template)
        else:
            results = [pushes.push(args.device, vision, user, args.template)]
    except ValueError as exc:  # the document: nothing was written
        print(f"xl-hub config push: {args.file}: {exc}", file=sys.stderr)
        return 1
    return _report(results)


def _report(results: list[PushResult]) -> int:
    if not results:
        print("xl-hub config push: the village has no active device", file=sys.stderr)
        return 1
    for r in results:
        if r.error is None:
            print(f"{r.device_id}  rev {r.rev}  queued: the running hub sends it; its answer: xl-hub config history")
        else:
            print(f"{r.device_id}  not queued: {r.error}", file=sys.stderr)
    return 0 if all(r.error is None for r in results) else 1

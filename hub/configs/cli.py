"""``xl-hub config push|history``: push a vision config to a device or a village, and show a device's history.

``push`` connects to the broker with the hub config's ``mqtt`` section, under
a client id of its own (sharing the hub's would make the broker kick one of
them off), and waits for the broker's PUBACK of each command before it exits:
a command the broker has accepted reaches an offline device from its
persistent session (QoS 1) when it reconnects, and the history says ``sent``
until the device acks.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from sqlalchemy import Engine

from hub.cli_options import add_source
from hub.cli_output import print_rows
from hub.commands import send_command
from hub.configs.service import ConfigPushes, PushResult

_CONNECT_TIMEOUT_S = 10.0
_PUBACK_TIMEOUT_S = 10.0


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
    if getattr(args, "config", None) is None:
        print("xl-hub config push: needs --config (its mqtt section), not --db", file=sys.stderr)
        return 2
    try:
        vision = load_vision(args.file)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"xl-hub config push: {args.file}: {exc}", file=sys.stderr)
        return 1
    from hub.config import load_config

    cfg = load_config(args.config)
    user = args.by or getpass.getuser()
    with _Broker(cfg.mqtt) as broker:
        if not broker.connected:
            print(f"xl-hub config push: no connection to {cfg.mqtt.host}:{cfg.mqtt.port}", file=sys.stderr)
            return 1
        pushes = ConfigPushes(engine, lambda d, op, a: send_command(engine, broker, d, op, a))
        try:
            if args.village is not None:
                results = pushes.push_village(args.village, vision, user, args.template)
            else:
                results = [pushes.push(args.device, vision, user, args.template)]
        except ValueError as exc:  # the document: nothing was sent
            print(f"xl-hub config push: {args.file}: {exc}", file=sys.stderr)
            return 1
        unconfirmed = broker.wait_all()
    return _report(results, unconfirmed)


def _report(results: list[PushResult], unconfirmed: int) -> int:
    if not results:
        print("xl-hub config push: the village has no active device", file=sys.stderr)
        return 1
    for r in results:
        if r.error is None:
            print(f"{r.device_id}  rev {r.rev}  sent (command {r.command_id}); the device's answer: config history")
        else:
            print(f"{r.device_id}  not sent: {r.error}", file=sys.stderr)
    if unconfirmed:
        print(f"xl-hub config push: the broker did not confirm {unconfirmed} command(s)", file=sys.stderr)
    return 0 if unconfirmed == 0 and all(r.error is None for r in results) else 1


class _Broker:
    """A ``hub.commands.Publisher`` on a paho client of its own that remembers its
    publications, so the command exits only once the broker has them."""

    def __init__(self, cfg: Any) -> None:
        from hub.mqtt.client import make_client

        self.client = make_client(cfg, f"{cfg.client_id}-config"[:64])
        self._ready = threading.Event()
        self.client.on_connect = lambda *_a: self._ready.set()
        self.cfg = cfg
        self.infos: list[mqtt.MQTTMessageInfo] = []
        self.connected = False

    def __enter__(self) -> _Broker:
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()
        self.connected = self._ready.wait(_CONNECT_TIMEOUT_S) and self.client.is_connected()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, items: Sequence[tuple[str, bytes, int, Any]], timeout: float = 5.0) -> list[int]:
        out = []
        for topic, payload, qos, _track in items:
            info = self.client.publish(topic, payload, qos=qos)
            self.infos.append(info)
            out.append(int(info.rc))
        return out

    def is_connected(self) -> bool:
        return bool(self.client.is_connected())

    def wait_all(self) -> int:
        """How many publications the broker did not confirm in time."""
        missing = 0
        for info in self.infos:
            # paho raises when the message was never queued (connection lost): counted below.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(_PUBACK_TIMEOUT_S)
            missing += not info.is_published()
        return missing

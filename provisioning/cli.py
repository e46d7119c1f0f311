"""``xl-provision``: the installers' and county office's tool."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from provisioning import __version__

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from provisioning.state import State

ROLE = (
    "xl-provision is for the county office and the installers who commission "
    "cameras in the villages. It runs the county certificate authority, gives "
    "each device its 20-digit national ID and its own TLS certificate, registers "
    "households, 联防组 groups and devices in the hub's database (one by one or "
    "all 3,312 from a CSV), writes the SD-card bundle and a printable QR label for "
    "each device, generates the broker's TLS/ACL configuration, revokes lost or "
    "stolen devices, and checks a new installation at the door."
)

EPILOG = (
    "Every command takes --state DIR (the CA and issued material; default $XL_PROVISION_STATE) and "
    "--db URL (the hub database; default sqlite:///DIR/hub.sqlite3, or postgresql://... for the county hub), "
    "before the command or after it. "
    "Township codes 01..18 are this network's local allocation for Minqin's towns, not national codes."
)


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--state and --db, on the top-level parser and on every command.

    Users of git and docker write options before the command. argparse copies
    a command's defaults over what the top-level parser found, so the
    commands' copies default to SUPPRESS: given after the command they win,
    absent they leave the value given before it. Whether --state was given at
    all is checked after parsing (``main``), since it may come from either."""
    env_state = os.environ.get("XL_PROVISION_STATE")
    state_default = (Path(env_state) if env_state else None) if top else argparse.SUPPRESS
    parser.add_argument("--state", type=Path, default=state_default, metavar="DIR",
                        help="provisioning state folder (default $XL_PROVISION_STATE)")  # fmt: skip
    parser.add_argument("--db", metavar="URL", default=None if top else argparse.SUPPRESS,
                        help="hub database URL (default: sqlite file in --state)")  # fmt: skip


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, top=False)
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xl-provision", description=ROLE, epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"xl-provision {__version__}")
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _common()

    ca_parser = sub.add_parser("ca", parents=[common], help="the county CA")
    ca = ca_parser.add_subparsers(dest="ca_command", metavar="ACTION")
    init = ca.add_parser("init", parents=[common], help="create the CA, broker and hub certificates")
    init.add_argument("--broker-host", required=True, help="hostname devices use for the broker (in the SAN)")
    init.add_argument("--hostname", action="append", default=[], help="extra broker SAN (DNS or IP; repeat)")
    init.add_argument("--broker-port", type=int, default=8883)
    init.add_argument("--update-port", type=int, default=8443, help="the hub's update server (hub updates.port)")
    init.add_argument("--ntp-server", help="county NTP server for the Pis (default: the broker host)")
    init.add_argument("--hub-cn", default="hub", help="CN (MQTT username) of the hub's client certificate")
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    client = ca.add_parser(
        "client", parents=[common], help="issue another hub-side identity (a second hub worker, the console)"
    )
    client.add_argument("name", metavar="CN", help="its CN and MQTT username/client id, e.g. hub-2")
    client.add_argument(
        "--role",
        choices=["hub", "monitor"],
        default="hub",
        help="hub: reads uplink, writes cmd and alerts; monitor: reads uplink only",
    )
    client.add_argument("--broker-dir", type=Path, help="broker-config folder to update (default: the last one)")

    dev_parser = sub.add_parser("device", parents=[common], help="one device")
    dev = dev_parser.add_subparsers(dest="device_command", metavar="ACTION")
    add = dev.add_parser("add", parents=[common], help="provision one household's device")
    for name in ("township", "village", "household", "group"):
        add.add_argument(f"--{name}", required=True)
    for name in ("lat", "lon", "name", "phone", "armed-from", "armed-to"):
        add.add_argument(f"--{name}")
    add.add_argument("--leader", action="store_true", help="this household leads its group")
    add.add_argument("--reissue", action="store_true", help="new key and certificate for the existing device")
    add.add_argument("--broker-dir", type=Path, help="broker-config folder to update (default: the last one)")

    batch = sub.add_parser("batch", parents=[common], help="provision households from a CSV (idempotent)")
    batch.add_argument("csv", type=Path, metavar="FILE.csv")
    batch.add_argument("--reissue", action="store_true", help="reissue certificates of existing devices")
    batch.add_argument("--broker-dir", type=Path, help="broker-config folder to update (default: the last one)")
    batch.add_argument("--quiet", action="store_true", help="no progress bar")

    bc = sub.add_parser(
        "broker-config",
        parents=[common],
        help="Mosquitto 2.0 TLS + dynamic-security config for the hub (brings a running one in step)",
    )
    bc.add_argument("--out", type=Path, required=True, metavar="DIR")
    bc.add_argument("--port", type=int, help="TLS listener port (default: the CA's broker port, 8883)")
    bc.add_argument("--bind", help="listen address (default: all)")
    bc.add_argument("--owner", default="mosquitto", help="user the broker runs as (owns key, data; root only)")
    bc.add_argument(
        "--dynsec-plugin",
        type=Path,
        metavar="PATH",
        help="mosquitto_dynamic_security.so (default: found under /usr/lib)",
    )

    rv = sub.add_parser("revoke", parents=[common], help="revoke a lost or stolen device")
    rv.add_argument("device", metavar="DEVICE")
    rv.add_argument("--reason", default="revoked")
    rv.add_argument("--broker-dir", type=Path, help="broker-config folder (default: the last one)")
    rv.add_argument("--broker-pid", type=int, help="pid of the running broker (default: its pid file)")
    rv.add_argument("--restart-broker", action="store_true", help="restart the broker so the CRL takes effect")

    vf = sub.add_parser("verify", parents=[common], help="commissioning check of an installed device")
    vf.add_argument("device", metavar="DEVICE")
    vf.add_argument("--broker", metavar="HOST:PORT", help="default: the CA's broker host and port")
    vf.add_argument("--timeout", type=float, default=180.0, help="seconds to wait (default 180)")

    sd = sub.add_parser(
        "sd-card",
        parents=[common],
        help="put a device's bundle on a Raspberry Pi OS card or image (or list a village's cards)",
    )
    sd.add_argument("device", metavar="DEVICE", nargs="?", help="the device to write (omit with --village)")
    sd.add_argument(
        "--image",
        required=True,
        metavar="IMG",
        help="the card (/dev/sdX) or a Raspberry Pi OS image file, already written by Imager",
    )
    sd.add_argument(
        "--wheels",
        type=Path,
        required=True,
        metavar="DIR",
        help="aarch64 wheels from tools/pi-wheels.sh (the Pi installs offline)",
    )
    sd.add_argument("--village", help="print one sd-card command per device of this village, in order")
    sd.add_argument("--township", metavar="NN", help="with --village: its township code, if the name repeats")
    sd.add_argument(
        "--labels",
        type=Path,
        metavar="SHEET.pdf|png",
        help="with --village: also write its A4 label sheet (3 x 8), in the same order",
    )

    lb = sub.add_parser("labels", parents=[common], help="a village's A4 label sheet (3 x 8 labels), PDF or PNG")
    lb.add_argument("--village", required=True)
    lb.add_argument("--township", metavar="NN")
    lb.add_argument("--out", type=Path, required=True, metavar="SHEET.pdf|png")

    from provisioning.release import commands as release_commands

    release_commands.add_parser(sub, common)
    from provisioning import contacts_cli

    contacts_cli.add_parser(sub, common)  # issue 21: escalation contacts
    return parser


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from provisioning import broker_config, commands
    from provisioning.state import State

    state = State(args.state)
    if args.command == "ca" and args.ca_command == "client":
        engine = commands.open_db(state, args.db)
        try:
            for line in commands.add_client(state, engine, args.name, args.role, args.broker_dir):
                print(line)
        finally:
            engine.dispose()
        return 0
    if args.command == "ca":
        if args.ca_command != "init":
            parser.parse_args(["ca", "--help"])
        written = commands.ca_init(
            state,
            broker_host=args.broker_host,
            hostnames=args.hostname,
            broker_port=args.broker_port,
            update_port=args.update_port,
            ntp_server=args.ntp_server,
            hub_cn=args.hub_cn,
            force=args.force,
        )
        for path in written:
            print(path)
        commands.open_db(state, args.db).dispose()
        return 0
    engine = commands.open_db(state, args.db)
    try:
        if args.command == "device":
            if args.device_command != "add":
                parser.parse_args(["device", "--help"])
            values = {
                k: getattr(args, k)
                for k in (
                    "township",
                    "village",
                    "household",
                    "group",
                    "lat",
                    "lon",
                    "name",
                    "phone",
                    "armed_from",
                    "armed_to",
                )
            }
            values["leader"] = "1" if args.leader else ""
            return commands.device_add(state, engine, values, reissue=args.reissue, broker_dir=args.broker_dir)
        if args.command == "batch":
            return commands.batch(
                state, engine, args.csv, reissue=args.reissue, broker_dir=args.broker_dir, quiet=args.quiet
            )
        if args.command == "broker-config":
            conf = broker_config.generate(
                state, engine, args.out, port=args.port, bind=args.bind, owner=args.owner, plugin=args.dynsec_plugin
            )
            print(conf)
            return 0
        if args.command == "revoke":
            return commands.revoke(
                state,
                engine,
                args.device,
                reason=args.reason,
                broker_dir=args.broker_dir,
                pid=args.broker_pid,
                restart=args.restart_broker,
            )
        if args.command == "verify":
            return commands.run_verify(state, engine, args.device, args.broker, args.timeout)
        if args.command in ("sd-card", "labels"):
            return _cards(args, parser, state, engine)
        if args.command == "contacts":
            from provisioning import contacts_cli

            return contacts_cli.run(engine, args)
    finally:
        engine.dispose()
    parser.print_help()
    return 2


def _cards(args: argparse.Namespace, parser: argparse.ArgumentParser, state: State, engine: Engine) -> int:
    from provisioning import cards
    from provisioning.label_sheet import LabelSheetError, write_sheet
    from provisioning.sdcard import SdCardError

    try:
        if args.command == "labels":
            found = cards.village_cards(engine, args.village, args.township)
            for path in write_sheet(cards.labels_for(state, found), args.village, args.out):
                print(path)
            return 0
        if args.village:
            return cards.village_plan(state, engine, args.village, args.township, args.image, args.wheels, args.labels)
        if not args.device:
            parser.error("sd-card needs a DEVICE or --village")
        return cards.sd_card(state, args.device, Path(args.image), args.wheels)
    except (cards.CardsError, SdCardError, LabelSheetError) as exc:
        print(f"xl-provision: {exc}", file=sys.stderr)
        return 1


def _release(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    # No registry database here, and `release list --repo` needs no state folder.
    from provisioning.release import commands as release_commands
    from xlrelease.store import RepositoryError

    try:
        return release_commands.run(args, parser)
    except (release_commands.ReleaseUsageError, RepositoryError) as exc:
        print(f"xl-provision: {exc}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "release":
        return _release(args, parser)
    if args.state is None:
        parser.error("--state DIR is required (before or after the command), or set XL_PROVISION_STATE")
    from provisioning.batch import CsvError
    from provisioning.broker_config import BrokerError
    from provisioning.commands import UsageError
    from provisioning.pki import PkiError
    from provisioning.state import StateError
    from provisioning.templates import TemplateError

    try:
        return _dispatch(args, parser)
    except (UsageError, CsvError, StateError, PkiError, TemplateError, BrokerError) as exc:
        print(f"xl-provision: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

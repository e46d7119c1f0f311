"""``xl-provision``: the installers' and county office's tool."""

from __future__ import annotations

import argparse
import sys

from provisioning import __version__

ROLE = (
    "xl-provision is for the county office and the installers who commission "
    "cameras in the villages. It runs the county certificate authority, gives "
    "each device its 20-digit national ID and its own TLS certificate, registers "
    "households, 联防组 groups and devices in the hub's database (one by one or "
    "all 3,312 from a CSV), writes the SD-card bundle and a printable QR label for "
    "each device, generates the broker's TLS/ACL configuration, revokes lost or "
    "stolen devices, and checks a new installation at the door."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xl-provision", description=ROLE)
    parser.add_argument("--version", action="version", version=f"xl-provision {__version__}")
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

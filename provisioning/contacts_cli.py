"""``xl-provision contacts import FILE.csv`` (issue 21): the people escalations notify.

The import checks every row against the registry first and writes all of
them or none; a bad row is named by its row number and column, never by its
phone number. Importing the same file again changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import Engine

from hub.contacts.csv_import import KNOWN, import_csv


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    ct = sub.add_parser("contacts", parents=[common], help="contacts for alert escalation (CSV)")
    actions = ct.add_subparsers(dest="contacts_command", metavar="ACTION")
    imp = actions.add_parser(
        "import",
        parents=[common],
        help="import or update contacts from a CSV file",
        description=f"CSV with a header: {','.join(KNOWN)}. Roles: security_head, grid_worker "
        "(need a village), township_duty (needs a township), county_desk.",
    )
    imp.add_argument("csv", type=Path, metavar="FILE.csv")


def run(engine: Engine, args: argparse.Namespace) -> int:
    if args.contacts_command != "import":
        print("xl-provision contacts: ACTION is import", file=sys.stderr)
        return 2
    try:
        text = args.csv.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"xl-provision contacts import: cannot read {args.csv}: {exc}", file=sys.stderr)
        return 1
    result = import_csv(engine, text)
    if result.errors:
        for line in result.errors:
            print(f"{args.csv}: {line}", file=sys.stderr)
        print(f"nothing imported: {len(result.errors)} bad row(s)", file=sys.stderr)
        return 1
    print(f"contacts: {result.changed} added or changed, {result.unchanged} unchanged")
    return 0

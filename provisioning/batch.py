"""``xl-provision batch FILE.csv``: the county roll-out.

Columns (header row required, UTF-8, an Excel BOM is fine):

=========== ======== ==========================================================
township    required 2-digit local code (01..18) or name, e.g. 泉山镇
village     required village name within the township
household   required the county's household code (idempotence key)
group       required 联防组 id, [A-Za-z0-9_-], e.g. g0101
lat, lon    required columns; values may be empty (both or neither)
name        optional shown to neighbours in an alert (e.g. 张家)
phone       optional household contact
leader      optional 1 marks the group's leader household
armed_from  optional HH:MM local time (default 22:00)
armed_to    optional HH:MM local time (default 06:00)
=========== ======== ==========================================================

Other columns are ignored (and listed once on stderr). Row numbers in the
report are line numbers of the file as a spreadsheet shows them: the header is
row 1, the first household row 2.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from provisioning.bundle import DeviceSpec
from provisioning.enroll import Outcome
from provisioning.rows import OPTIONAL, REQUIRED, parse_spec


class CsvError(ValueError):
    pass


def read_rows(path: Path, outcome: Outcome) -> tuple[list[tuple[int | None, DeviceSpec]], list[str]]:
    """Valid rows (row number, spec), and the ignored column names; bad rows go to ``outcome.errors``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CsvError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CsvError(f"{path}: not UTF-8 (byte {exc.start}); save the sheet as CSV UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise CsvError(f"{path}: header lacks column(s) {', '.join(missing)}; need {','.join(REQUIRED)}")
    reader.fieldnames = header
    ignored = [h for h in header if h not in REQUIRED and h not in OPTIONAL]
    rows: list[tuple[int | None, DeviceSpec]] = []
    seen: dict[str, int] = {}
    leaders: dict[str, int] = {}
    line = 1
    for record in reader:
        line = reader.line_num
        if None in record:
            outcome.errors.append((line, f"more fields than header columns ({len(header)})"))
            continue
        if not any((v or "").strip() for v in record.values()):
            continue  # blank line
        try:
            spec = parse_spec(record)
        except ValueError as exc:
            outcome.errors.append((line, str(exc)))
            continue
        if spec.household in seen:
            outcome.errors.append((line, f"household {spec.household!r} already appears in row {seen[spec.household]}"))
            continue
        if spec.leader and spec.group in leaders:
            outcome.errors.append((line, f"group {spec.group} already has its leader in row {leaders[spec.group]}"))
            continue
        seen[spec.household] = line
        if spec.leader:
            leaders[spec.group] = line
        rows.append((line, spec))
    return rows, ignored

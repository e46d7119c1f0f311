"""``xl-provision contacts import FILE.csv``: every row checked before any is written.

Header (any order; township/village/device_id may be left empty where the role
allows): ``id,name,role,phone,township,village,device_id[,active]``. A bad row is
refused with its row number (the header is row 1) and the column, never its
phone. Re-importing the same file changes nothing (rows are matched on ``id``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from sqlalchemy import Engine

from hub.contacts.store import ContactError, ContactIn, echo, resolve, upsert

REQUIRED = ("id", "name", "role", "phone")
KNOWN = (*REQUIRED, "township", "village", "device_id", "active")


@dataclass
class ImportResult:
    changed: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def _active(text: str | None) -> bool:
    value = (text or "1").strip().lower()
    if value in ("1", "true", "yes", "y", "是"):
        return True
    if value in ("0", "false", "no", "n", "否"):
        return False
    raise ContactError("active", "1 or 0")


def parse(text: str) -> tuple[list[tuple[int, ContactIn]], list[str]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))  # Excel writes a BOM
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [h for h in REQUIRED if h not in header]
    unknown = [h for h in header if h not in KNOWN]
    if missing or unknown:
        what = [f"missing column {h!r}" for h in missing] + [f"unknown column {h!r}" for h in unknown]
        return [], [f"row 1: {'; '.join(what)}"]
    rows, errors = [], []
    seen: dict[str, int] = {}
    for n, raw in enumerate(reader, start=2):
        extra = raw.pop(None, None)
        if extra:  # an unquoted comma (a phone typed 138,1234,5678): every later column shifted
            errors.append(f"row {n}: {len(header) + len(extra)} cells, the header has {len(header)}")
            continue
        got = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        try:
            c = ContactIn(
                id=got["id"],
                name=got["name"],
                role=got["role"],
                phone=got.get("phone") or None,
                township=got.get("township") or None,
                village=got.get("village") or None,
                device_id=got.get("device_id") or None,
                active=_active(got.get("active")),
            )
        except ContactError as exc:
            errors.append(f"row {n}, column {exc.column}: {str(exc).split(': ', 1)[1]}")
            continue
        if c.id in seen:
            errors.append(f"row {n}, column id: {echo(c.id)} already on row {seen[c.id]}")
            continue
        seen[c.id] = n
        rows.append((n, c))
    return rows, errors


def import_csv(engine: Engine, text: str, by: str | None = "xl-provision") -> ImportResult:
    """All rows or none: a file with one bad row writes nothing, so a fixed file is simply imported again."""
    result = ImportResult()
    rows, result.errors = parse(text)
    with engine.connect() as conn:
        for n, c in rows:
            try:
                resolve(conn, c)
            except ContactError as exc:
                result.errors.append(f"row {n}, column {exc.column}: {str(exc).split(': ', 1)[1]}")
    if result.errors:
        # In file order, whichever check found them: the way a person fixes a file.
        result.errors.sort(key=lambda line: int(line.split(",")[0].split()[1].rstrip(":")))
        return result
    with engine.begin() as conn:
        for _n, c in rows:
            if upsert(conn, c, by):
                result.changed += 1
            else:
                result.unchanged += 1
    return result

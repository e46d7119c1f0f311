"""Tables on the terminal for the operators' commands (``xl-hub devices``,
``events``, ``db status``, …): aligned columns, or JSON with ``--json``."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def print_rows(rows: Sequence[dict[str, Any]], as_json: bool, out: Any = None) -> None:
    out = out or sys.stdout
    if as_json:
        json.dump(list(rows), out, ensure_ascii=False, indent=1)
        out.write("\n")
        return
    if not rows:
        out.write("(none)\n")
        return
    cols = list(rows[0])
    cells = [[_cell(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    out.write("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip() + "\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)

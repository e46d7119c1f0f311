"""HTTP Range for one file (RFC 9110 section 14): what part of it to send.

Only single byte ranges are honoured. A device resuming a download asks for
``bytes=N-``; a multi-range request is legal but no client of ours sends one,
and answering it needs multipart bodies, so it is ignored as the RFC allows
(the whole file is sent). A header that does not parse is ignored the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ONE = re.compile(r"bytes=(\d*)-(\d*)")


@dataclass(frozen=True, slots=True)
class Whole:
    """Send everything: 200."""


@dataclass(frozen=True, slots=True)
class Part:
    """Send bytes ``start``..``end`` inclusive: 206 with Content-Range."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """The range lies past the end of the file: 416 with ``Content-Range: bytes */size``."""


Choice = Whole | Part | Unsatisfiable


def choose(header: str | None, size: int) -> Choice:
    if header is None:
        return Whole()
    m = _ONE.fullmatch(header.strip())
    if m is None:
        return Whole()  # multi-range, another unit, or garbage: ignored
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return Whole()  # "bytes=-" is not a range
    if not first:  # a suffix: the last N bytes
        n = int(last)
        if n == 0:
            return Unsatisfiable()
        return Part(max(0, size - n), size - 1) if size else Unsatisfiable()
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return Whole()  # invalid: ignored, not refused (RFC 9110 14.1.1)
    if start >= size:
        return Unsatisfiable()
    return Part(start, min(end, size - 1))

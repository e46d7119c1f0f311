"""End-to-end receipts: the hub telling a device which of its kept messages it
has committed, so the device may forget them.

Every message a device keeps in its outbox (event, snap, ack) carries ``q``,
the device's own outbox sequence number for it: a positive integer, unique
per device and never reused (SQLite AUTOINCREMENT). After each commit the
hub publishes, per device, one receipt on ``xl/v1/<device>/rcpt`` listing
the ``q`` values of that device it has committed (stored, duplicate or
rejected for good), as inclusive ranges.

Why ranges of the device's numbers and not a cumulative "everything up to N":
several hub workers share one subscription, so a device's messages are split
between them and each worker knows only its own commits; the device also
sends panics ahead of older rows. A watermark would need state shared by the
workers; a worker's ranges are true on their own. In the usual case (a
device's messages of one batch are consecutive) a receipt is one range,
about 24 bytes of payload.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from protocol import limits
from protocol.errors import ProtocolError
from protocol.messages import SEQ_MAX, _version

SEQ_MIN = 1
MAX_RANGES = 12  # 12 ranges of 16-digit numbers stay under MAX_RECEIPT_BYTES; more go in another receipt

Range = tuple[int, int]  # inclusive


def is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and SEQ_MIN <= value <= SEQ_MAX


def to_ranges(seqs: Iterable[int]) -> list[Range]:
    """Sorted, merged inclusive ranges covering exactly ``seqs``."""
    out: list[Range] = []
    for s in sorted(set(seqs)):
        if out and s == out[-1][1] + 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def covers(ranges: Sequence[Range], seq: int) -> bool:
    return any(lo <= seq <= hi for lo, hi in ranges)


@dataclass(frozen=True, slots=True)
class Receipt:
    """Hub → one device: these of your ``q`` numbers are committed."""

    KIND: ClassVar[str] = "rcpt"
    ranges: tuple[Range, ...]
    version: int = limits.SCHEMA_VERSION

    def to_wire(self) -> dict[str, Any]:
        # A single number stands for itself: the common trickle case stays short.
        return {"v": self.version, "q": [lo if lo == hi else [lo, hi] for lo, hi in self.ranges]}

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Receipt:
        version = _version(obj)
        items = obj.get("q")
        if items is None:
            raise ProtocolError("missing_field", "field 'q' is required")
        if not isinstance(items, list) or not 0 < len(items) <= MAX_RANGES:
            raise ProtocolError("bad_field", f"'q' must be a list of 1..{MAX_RANGES} numbers or ranges")
        ranges: list[Range] = []
        for item in items:
            if is_seq(item):
                ranges.append((item, item))
            elif (
                isinstance(item, list) and len(item) == 2 and is_seq(item[0]) and is_seq(item[1]) and item[0] <= item[1]
            ):
                ranges.append((item[0], item[1]))
            else:
                raise ProtocolError("bad_field", f"'q' entry {item!r:.40} is not a number or [lo, hi]")
        return cls(ranges=tuple(ranges), version=version)


def receipts_for(seqs: Iterable[int]) -> list[Receipt]:
    """One receipt per MAX_RANGES ranges (nearly always exactly one)."""
    ranges = to_ranges(seqs)
    return [Receipt(tuple(ranges[i : i + MAX_RANGES])) for i in range(0, len(ranges), MAX_RANGES)]

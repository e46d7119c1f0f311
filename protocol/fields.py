"""Field readers for decoded JSON objects.

Each reader takes the decoded object, the short wire key and its bounds, and
either returns a clean Python value or raises ProtocolError naming the key.
They accept only exact JSON types (``true`` is not an integer here, ``1.0`` is
not an integer either) because a lax reader is how a fuzzer finds crashes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from protocol.errors import ProtocolError

_MISSING = object()


def _storable(value: str) -> bool:
    """Text a database can hold: no NUL (PostgreSQL's text refuses it) and no lone
    surrogate (``"\\ud800"`` decodes to one; it is no UTF-8, so neither SQLite nor
    PostgreSQL can take it). One such string in a batch would fail the batch's whole
    transaction, which ingest retries for ever: every device's messages behind it."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _get(obj: Mapping[str, Any], key: str, required: bool) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        if required:
            raise ProtocolError("missing_field", f"field {key!r} is required")
        return _MISSING
    return value


def req_int(obj: Mapping[str, Any], key: str, lo: int, hi: int) -> int:
    value = opt_int(obj, key, lo, hi, required=True)
    assert value is not None
    return value


def opt_int(obj: Mapping[str, Any], key: str, lo: int, hi: int, *, required: bool = False) -> int | None:
    value = _get(obj, key, required)
    if value is _MISSING:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("bad_field", f"field {key!r} must be an integer, got {_kind(value)}")
    if not lo <= value <= hi:
        raise ProtocolError("bad_field", f"field {key!r}={value} is outside {lo}..{hi}")
    return value


def opt_float(obj: Mapping[str, Any], key: str, lo: float, hi: float, *, required: bool = False) -> float | None:
    value = _get(obj, key, required)
    if value is _MISSING:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError("bad_field", f"field {key!r} must be a number, got {_kind(value)}")
    number = float(value)
    if math.isnan(number) or not lo <= number <= hi:
        raise ProtocolError("bad_field", f"field {key!r}={value} is outside {lo}..{hi}")
    return number


def opt_bool(obj: Mapping[str, Any], key: str, *, required: bool = False) -> bool | None:
    """Booleans travel as 0/1 (shorter than true/false); true/false are accepted too."""
    value = _get(obj, key, required)
    if value is _MISSING:
        return None
    if value is True or (value == 1 and not isinstance(value, float)):
        return True
    if value is False or (value == 0 and not isinstance(value, float)):
        return False
    raise ProtocolError("bad_field", f"field {key!r} must be 0 or 1, got {value!r:.40}")


def opt_str(
    obj: Mapping[str, Any],
    key: str,
    max_len: int,
    *,
    pattern: re.Pattern[str] | None = None,
    required: bool = False,
) -> str | None:
    value = _get(obj, key, required)
    if value is _MISSING:
        return None
    if not isinstance(value, str):
        raise ProtocolError("bad_field", f"field {key!r} must be a string, got {_kind(value)}")
    if len(value) > max_len:
        raise ProtocolError("bad_field", f"field {key!r} is longer than {max_len} characters")
    if not _storable(value):
        raise ProtocolError("bad_field", f"field {key!r} holds a NUL or a lone surrogate")
    if pattern is not None and not pattern.fullmatch(value):
        raise ProtocolError("bad_field", f"field {key!r}={value[:40]!r} has a bad format")
    return value


def req_str(obj: Mapping[str, Any], key: str, max_len: int, *, pattern: re.Pattern[str] | None = None) -> str:
    value = opt_str(obj, key, max_len, pattern=pattern, required=True)
    assert value is not None
    return value


def req_enum(obj: Mapping[str, Any], key: str, allowed: frozenset[str]) -> str:
    value = req_str(obj, key, 16)
    if value not in allowed:
        raise ProtocolError("bad_field", f"field {key!r}={value!r} is not one of {', '.join(sorted(allowed))}")
    return value


def opt_box(obj: Mapping[str, Any], key: str) -> tuple[int, int, int, int] | None:
    """A box as [x1, y1, x2, y2] in permille (0..1000) of the frame, x1<=x2, y1<=y2."""
    value = _get(obj, key, False)
    if value is _MISSING:
        return None
    if not isinstance(value, list) or len(value) != 4:
        raise ProtocolError("bad_field", f"field {key!r} must be a list of 4 integers")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 1000:
            raise ProtocolError("bad_field", f"field {key!r} values must be integers 0..1000")
    x1, y1, x2, y2 = value
    if x1 > x2 or y1 > y2:
        raise ProtocolError("bad_field", f"field {key!r} must have x1<=x2 and y1<=y2")
    return (x1, y1, x2, y2)


def opt_names(obj: Mapping[str, Any], key: str, max_items: int, max_len: int) -> tuple[str, ...] | None:
    """A list of distinct non-empty names (zones), at most ``max_items`` of at most ``max_len`` characters."""
    value = _get(obj, key, False)
    if value is _MISSING:
        return None
    if not isinstance(value, list) or len(value) > max_items:
        raise ProtocolError("bad_field", f"field {key!r} must be a list of at most {max_items} names")
    for item in value:
        if not isinstance(item, str) or not 0 < len(item) <= max_len:
            raise ProtocolError("bad_field", f"field {key!r} must hold names of 1..{max_len} characters")
        if not _storable(item):
            raise ProtocolError("bad_field", f"field {key!r} holds a name with a NUL or a lone surrogate")
    if len(set(value)) != len(value):
        raise ProtocolError("bad_field", f"field {key!r} names a zone twice")
    return tuple(value)


def opt_object(obj: Mapping[str, Any], key: str) -> dict[str, Any] | None:
    value = _get(obj, key, False)
    if value is _MISSING:
        return None
    if not isinstance(value, dict):
        raise ProtocolError("bad_field", f"field {key!r} must be an object, got {_kind(value)}")
    return value


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "a list", str: "a string", int: "an integer", float: "a number"}.get(
        type(value), type(value).__name__
    )

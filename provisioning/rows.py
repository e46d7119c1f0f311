"""Validate one household's details (a CSV row or `device add` options).

Every problem is a ValueError naming the column and the bad value, so a row
of the county roll-out can be fixed from the report alone.
"""

from __future__ import annotations

import math
import re

from protocol.errors import ProtocolError
from protocol.ids import parse_group_id
from provisioning.bundle import DeviceSpec
from provisioning.townships import TownshipError, resolve_township

REQUIRED = ("township", "village", "household", "group", "lat", "lon")
OPTIONAL = ("name", "phone", "leader", "armed_from", "armed_to")

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,30}$")


def _text(field: str, value: str | None, max_len: int, *, required: bool) -> str | None:
    value = (value or "").strip()
    if not value:
        if required:
            raise ValueError(f"{field} is empty")
        return None
    if len(value) > max_len:
        raise ValueError(f"{field} is longer than {max_len} characters: {value[:20]!r}…")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{field} contains control characters: {value!r}")
    return value


def _coord(field: str, value: str | None, limit: float) -> float | None:
    value = (value or "").strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{field} is not a number: {value!r}") from None
    if not math.isfinite(number) or not -limit <= number <= limit:
        raise ValueError(f"{field} must be within ±{limit:g}, got {value!r}")
    return number


def _hhmm(field: str, value: str | None) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    if not _HHMM.match(value):
        raise ValueError(f"{field} must be HH:MM (24-hour), got {value!r}")
    return value


def _flag(field: str, value: str | None) -> bool:
    value = (value or "").strip()
    if value in ("", "0"):
        return False
    if value == "1":
        return True
    raise ValueError(f"{field} must be 1, 0 or empty, got {value!r}")


def parse_spec(values: dict[str, str | None]) -> DeviceSpec:
    """A DeviceSpec from column -> text; raises ValueError naming the column."""
    try:
        township, township_name = resolve_township(values.get("township") or "")
    except TownshipError as exc:
        raise ValueError(f"township: {exc}") from None
    group_text = (values.get("group") or "").strip()
    if not group_text:
        raise ValueError("group is empty")
    try:
        group = parse_group_id(group_text)
    except ProtocolError:
        raise ValueError(
            f"group {group_text!r} is not a group id (1-32 of A-Z a-z 0-9 _ -, starting with a letter or digit)"
        ) from None
    lat = _coord("lat", values.get("lat"), 90.0)
    lon = _coord("lon", values.get("lon"), 180.0)
    if (lat is None) != (lon is None):
        raise ValueError("give both lat and lon, or neither")
    phone = _text("phone", values.get("phone"), 32, required=False)
    if phone is not None and not _PHONE.match(phone):
        raise ValueError(f"phone is not a phone number: {phone!r}")
    household = _text("household", values.get("household"), 64, required=True)
    village = _text("village", values.get("village"), 64, required=True)
    assert household is not None and village is not None
    return DeviceSpec(
        township=township,
        township_name=township_name,
        village=village,
        household=household,
        group=group,
        lat=lat,
        lon=lon,
        name=_text("name", values.get("name"), 64, required=False),
        phone=phone,
        leader=_flag("leader", values.get("leader")),
        armed_from=_hhmm("armed_from", values.get("armed_from")),
        armed_to=_hhmm("armed_to", values.get("armed_to")),
    )

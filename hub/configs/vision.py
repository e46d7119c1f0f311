"""``check_vision_doc``: the hub's first look at a ``vision`` object before it is pushed.

Only obvious garbage is stopped here (a misspelt key, a polygon with two
points, a coordinate in pixels): the device validates the whole section
against its own schema and refuses a bad one with the reason in its ack, and
that schema moves with the agent's releases. Checking more here would mean
two schemas drifting apart, and a hub refusing what a newer agent accepts.
"""

from __future__ import annotations

import unicodedata
from typing import Any

# The keys the console manages (protocol/README.md, the `config` command); the
# device refuses any other, so the hub says so before anything is sent.
VISION_KEYS = ("masks", "zones", "required_zones", "profiles")
MAX_ZONES = 8
MAX_ZONE_NAME = 24
MAX_POLYGON_POINTS = 64  # no drawn zone needs more, and 8 KB is the whole command
# profiles → night → zones → name → kinds → a kind is 5 levels; the schema has no deeper key.
MAX_DEPTH = 8


def check_vision_doc(doc: Any) -> None:
    """Raise ``ValueError`` naming the first bad key (``vision.zones[1].polygon: …``)."""
    if not isinstance(doc, dict):
        raise ValueError("vision: must be an object (the keys masks, zones, required_zones, profiles)")
    if not doc:
        raise ValueError("vision: empty: nothing to push")
    for key in doc:
        if key not in VISION_KEYS:
            raise ValueError(f"vision.{key}: not a key a config push may set (only {', '.join(VISION_KEYS)})")
    if "masks" in doc:
        masks = doc["masks"]
        if not isinstance(masks, list):
            raise ValueError("vision.masks: must be a list of polygons")
        for i, polygon in enumerate(masks):
            _check_polygon(f"vision.masks[{i}]", polygon)
    names: list[str] = []
    if "zones" in doc:
        names = _check_zones(doc["zones"])
    if "required_zones" in doc:
        required = doc["required_zones"]
        if not isinstance(required, list):
            raise ValueError("vision.required_zones: must be a list of zone names")
        for i, name in enumerate(required):
            _check_name(f"vision.required_zones[{i}]", name)
            # Only when the same push brings the zones: otherwise the device's
            # own zones are the ones named, which the hub does not know.
            if "zones" in doc and name not in names:
                raise ValueError(f"vision.required_zones[{i}]: no zone named {name!r}")
    if "profiles" in doc and not isinstance(doc["profiles"], dict):
        raise ValueError("vision.profiles: must be an object (select, night_hours, day, night, …)")
    if "profiles" in doc and _depth(doc["profiles"]) > MAX_DEPTH:
        raise ValueError(f"vision.profiles: nested too deeply (a profile is at most {MAX_DEPTH} levels)")


def _depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply ``value`` nests, counted up to ``limit`` + 1 (no recursion: a pasted
    document nested thousands deep must be a bad document, not a RecursionError)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if not isinstance(node, dict | list):
            continue
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((v, level + 1) for v in (node.values() if isinstance(node, dict) else node))
    return deepest


def _check_zones(zones: Any) -> list[str]:
    if not isinstance(zones, list):
        raise ValueError("vision.zones: must be a list of zones")
    if len(zones) > MAX_ZONES:
        raise ValueError(f"vision.zones: {len(zones)} zones, at most {MAX_ZONES}")
    names: list[str] = []
    for i, zone in enumerate(zones):
        where = f"vision.zones[{i}]"
        if not isinstance(zone, dict):
            raise ValueError(f"{where}: must be an object with name and polygon")
        _check_name(f"{where}.name", zone.get("name"))
        if zone["name"] in names:
            raise ValueError(f"{where}.name: {zone['name']!r} is used twice")
        names.append(zone["name"])
        _check_polygon(f"{where}.polygon", zone.get("polygon"))
    return names


def _check_name(where: str, name: Any) -> None:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_ZONE_NAME:
        raise ValueError(f"{where}: must be a name of 1-{MAX_ZONE_NAME} characters")
    # The device names its zones back in every event (``zn``), where protocol.fields refuses a
    # NUL or a lone surrogate, and a control character is no name an operator can read.
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        raise ValueError(f"{where}: no control characters in a zone name")


def _check_polygon(where: str, polygon: Any) -> None:
    if not isinstance(polygon, list) or not 3 <= len(polygon) <= MAX_POLYGON_POINTS:
        raise ValueError(f"{where}: must be a polygon of 3-{MAX_POLYGON_POINTS} [x, y] points")
    for j, point in enumerate(polygon):
        if not isinstance(point, list) or len(point) != 2 or not all(_fraction(v) for v in point):
            raise ValueError(f"{where}[{j}]: must be [x, y], fractions 0..1 of the frame")


def _fraction(v: Any) -> bool:
    # bool is an int in Python, and `true` is no coordinate.
    return isinstance(v, int | float) and not isinstance(v, bool) and 0.0 <= v <= 1.0

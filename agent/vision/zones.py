"""Which zones a visit has entered, how long it stayed, and whether it may alert (docs/zones.md).

A person is where their feet are: the bottom centre of the box, so a tall
person on the road whose head overlaps the yard is on the road. A zone counts
as entered once the feet have stayed inside for its ``inertia_s`` (for a
loitering zone, its ``loiter_s``) without a break. Only a detection run that
finds the person *outside* breaks a stay: runs that find nobody are the
detector blinking, not the person leaving, and a 3 fps detector blinks often.

The state is per visit and keyed by zone name, and the zones' rules are
passed in on every run, so a profile switch or a pushed config takes effect
mid-visit without losing what the visit has done so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agent.config_zones import Rules, Zone

Box = tuple[float, float, float, float]
Point = tuple[float, float]


def feet(box: Box) -> Point:
    x1, _, x2, y2 = box
    return (x1 + x2) / 2, y2


def contains(polygon: Sequence[Point], point: Point) -> bool:
    """Even-odd rule, as agent.vision.masks rasterises: a point on a bottom edge is outside,
    but a box clipped at the frame's edge has y2 = 1.0, which must count as inside a zone
    drawn down to the edge."""
    x, y = point
    y = min(y, 1.0 - 1e-9)
    inside = False
    for (x1, y1), (x2, y2) in zip(polygon, [*polygon[1:], polygon[0]], strict=True):
        if ((y1 <= y < y2) or (y2 <= y < y1)) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def needed_s(zone: Zone) -> float:
    """How long a stay must last for the zone to count."""
    return max(zone.inertia_s, zone.loiter_s) if zone.loiter_s > 0 else zone.inertia_s


@dataclass(frozen=True, slots=True)
class ZoneView:
    """What a phase's event says about zones: ``zn``, ``lo`` and whether it may alert."""

    zones: tuple[str, ...] = ()
    loiter_s: int | None = None
    alertable: bool = True


class ZoneTrack:
    """One visit's zones."""

    __slots__ = ("_entered", "_longest", "_since")

    def __init__(self) -> None:
        self._since: dict[str, float] = {}  # zone → start of the current unbroken stay
        self._entered: list[str] = []  # in the order entered
        self._longest: dict[str, float] = {}  # loitering zone → its longest stay once past loiter_s

    @property
    def entered(self) -> tuple[str, ...]:
        return tuple(self._entered)

    def observe(self, ts: float, boxes: Sequence[Box], zones: Sequence[Zone]) -> bool:
        """One run that found people at ``boxes``; True when the visit entered a zone just now
        (a significant change: the hub may have to alert on it at once)."""
        if not boxes:
            return False  # nobody found: no break (see the module's docstring)
        points = [feet(b) for b in boxes]
        changed = False
        for zone in zones:
            if not any(contains(zone.polygon, p) for p in points):
                self._since.pop(zone.name, None)
                continue
            since = self._since.setdefault(zone.name, ts)
            stayed = ts - since
            if stayed + 1e-6 < needed_s(zone):
                continue
            if zone.name not in self._entered:
                self._entered.append(zone.name)
                changed = True
            if zone.loiter_s > 0:
                self._longest[zone.name] = max(self._longest.get(zone.name, 0.0), stayed)
        return changed

    def view(self, kind: str, rules: Rules) -> ZoneView:
        names = {z.name: z for z in rules.zones}
        # A zone a pushed config removed is no longer reported; its name may even be reused.
        entered = tuple(n for n in self._entered if n in names)[:8]
        stays = [s for n, s in self._longest.items() if n in names and names[n].loiter_s > 0]
        loiter = round(max(stays)) if stays else None
        if not rules.required_zones:
            alertable = True
        else:
            alertable = any(n in rules.required_zones and kind in names[n].kinds for n in entered)
        return ZoneView(entered, loiter, alertable)

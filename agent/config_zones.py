"""The ``vision:`` keys for zones, required zones and day/night profiles (docs/zones.md).

The file's shape (``ZoneFile``, ``ProfilesFile`` ...) is validated by xlconfig
like every other section; what a schema cannot say (names unique, required
zones and a profile's zones naming zones that exist, night hours when a
schedule picks the profile) is checked in :func:`zone_config`, each problem a
line naming its key like xlconfig's own. The code reads the plain frozen
dataclasses ``Zone``, ``Profile`` and ``Profiles``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Literal

from annotated_types import Interval, Len, MinLen

from xlconfig import SECTION, AfterValidator, ConfigError, Expect, Field, Float, Int, Str, problem

Kind = Literal["person", "motion"]
Select = Literal["none", "ir", "schedule", "ir_or_schedule"]
PROFILE_NAMES = ("day", "night")
MAX_ZONES = 8

_Coord = Annotated[Float, Interval(ge=0, le=1)]
Polygon = Annotated[tuple[tuple[_Coord, _Coord], ...], MinLen(3)]
_POLYGON = Expect("a polygon: at least 3 [x, y] points within 0..1 of the frame")


def _printable_name(text: str) -> str:
    # A control character (NUL above all) or a lone surrogate in a name would make every
    # event naming the zone refused at the hub (protocol.fields): refused here instead.
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text):
        raise ValueError("a control character")
    return text


_ZoneName = Annotated[Str, Len(1, 24), AfterValidator(_printable_name)]
_Kinds = Annotated[tuple[Kind, ...], Expect("a list of kinds: person, motion")]
_INERTIA = Interval(ge=0, le=60)
_INERTIA_DOC = "Inside this long without a break before the zone counts (0: at once)."
_LOITER = Interval(ge=0, le=3600)
_LOITER_DOC = "> 0: a loitering zone, which counts once a person has stayed this long."


def _hhmm(text: str) -> str:
    h, _, m = text.partition(":")
    if not (len(h) == len(m) == 2 and h.isdigit() and m.isdigit() and int(h) < 24 and int(m) < 60):
        raise ValueError("not HH:MM")
    return text


_HHMM = (AfterValidator(_hhmm), Expect('"HH:MM" (local time)'))


# -- what the code reads ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Zone:
    name: str
    polygon: tuple[tuple[float, float], ...]
    kinds: tuple[str, ...] = ("person",)
    inertia_s: float = 1.0
    loiter_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ZoneRules:
    """A profile's changes to one zone's rules; None: the zone's own."""

    kinds: tuple[str, ...] | None = None
    inertia_s: float | None = None
    loiter_s: float | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """A profile's overrides of the top-level rules; None (or no entry): the top-level value."""

    score_threshold: float | None = None
    confirm_hits: int | None = None
    confirm_window: int | None = None
    required_zones: tuple[str, ...] | None = None
    zones: dict[str, ZoneRules] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Profiles:
    select: str = "none"
    night_hours: tuple[str, str] | None = None  # (from, to), local time of schedule.timezone
    day: Profile = field(default_factory=Profile)
    night: Profile = field(default_factory=Profile)

    def get(self, name: str) -> Profile:
        return self.night if name == "night" else self.day


@dataclass(frozen=True, slots=True)
class Rules:
    """The rules in force: the top-level values with the active profile's overrides applied."""

    score_threshold: float
    confirm_hits: int
    confirm_window: int
    zones: tuple[Zone, ...] = ()
    required_zones: tuple[str, ...] = ()


def apply_profile(base: Rules, profile: Profile | None) -> Rules:
    if profile is None:
        return base
    zones = tuple(_override(z, profile.zones[z.name]) if z.name in profile.zones else z for z in base.zones)
    return Rules(
        base.score_threshold if profile.score_threshold is None else profile.score_threshold,
        base.confirm_hits if profile.confirm_hits is None else profile.confirm_hits,
        base.confirm_window if profile.confirm_window is None else profile.confirm_window,
        zones,
        base.required_zones if profile.required_zones is None else profile.required_zones,
    )


def _override(zone: Zone, r: ZoneRules) -> Zone:
    return replace(
        zone,
        kinds=zone.kinds if r.kinds is None else r.kinds,
        inertia_s=zone.inertia_s if r.inertia_s is None else r.inertia_s,
        loiter_s=zone.loiter_s if r.loiter_s is None else r.loiter_s,
    )


# -- the file's shape ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneFile:
    name: Annotated[
        _ZoneName,
        Expect("a name of 1-24 characters, no control characters"),
        Field(description="Unique, e.g. 院门 (the gate)."),
    ]
    polygon: Annotated[Polygon, _POLYGON, Field(description="The zone, fractions 0..1 of the frame.")]
    kinds: Annotated[_Kinds, Field(description="Kinds that may alert in this zone.")] = ("person",)
    inertia_s: Annotated[Float, _INERTIA, Field(description=_INERTIA_DOC)] = 1.0
    loiter_s: Annotated[Float, _LOITER, Field(description=_LOITER_DOC)] = 0.0


@dataclass(frozen=True)
class ZoneRulesFile:
    kinds: Annotated[_Kinds | None, Field(description="Kinds that may alert in this zone.")] = None
    inertia_s: Annotated[Float | None, _INERTIA, Field(description=_INERTIA_DOC)] = None
    loiter_s: Annotated[Float | None, _LOITER, Field(description=_LOITER_DOC)] = None


@dataclass(frozen=True)
class ProfileFile:
    score_threshold: Annotated[
        Float | None, Field(ge=0.05, le=0.99, description="Replaces detect.score_threshold.")
    ] = None
    confirm_hits: Annotated[Int | None, Field(ge=1, le=20, description="Replaces events.confirm_hits.")] = None
    confirm_window: Annotated[Int | None, Field(ge=1, le=20, description="Replaces events.confirm_window.")] = None
    required_zones: Annotated[
        tuple[_ZoneName, ...] | None,
        Expect("a list of zone names"),
        Field(description="Replaces vision.required_zones."),
    ] = None
    zones: Annotated[
        dict[_ZoneName, Annotated[ZoneRulesFile, SECTION]],
        Expect("a mapping of zone name to {kinds, inertia_s, loiter_s}"),
        Field(description="Rules per zone."),
    ] = field(default_factory=dict)


@dataclass(frozen=True)
class NightHours:
    start: Annotated[Str, *_HHMM, Field(alias="from", description="Night starts, local time.")] = "19:00"
    end: Annotated[Str, *_HHMM, Field(alias="to", description="Night ends; from > to spans midnight.")] = "06:00"


@dataclass(frozen=True)
class ProfilesFile:
    select: Annotated[Select, Field(description="What picks the night profile.")] = "none"
    night_hours: Annotated[NightHours | None, Field(description="For select: schedule, ir_or_schedule.")] = None
    day: Annotated[ProfileFile, SECTION] = field(default_factory=ProfileFile)
    night: Annotated[ProfileFile, SECTION] = field(default_factory=ProfileFile)


@dataclass(frozen=True, slots=True)
class ZoneConfig:
    zones: tuple[Zone, ...] = ()
    required_zones: tuple[str, ...] = ()
    profiles: Profiles | None = None


def zone_config(
    zones: Sequence[ZoneFile],
    required: Sequence[str],
    profiles: ProfilesFile | None,
    prefix: str = "vision.",
) -> ZoneConfig:
    """The parsed zones and profiles; ConfigError listing every cross-reference problem."""
    problems: list[str] = []
    names: list[str] = []
    if len(zones) > MAX_ZONES:
        problems.append(problem(f"{prefix}zones", f"{len(zones)} zones", f"at most {MAX_ZONES} zones"))
    for i, z in enumerate(zones):
        if z.name in names:
            problems.append(problem(f"{prefix}zones[{i}].name", z.name, "a name no other zone has"))
        names.append(z.name)

    def known(key: str, name: str) -> None:
        if name not in names:
            problems.append(f"{key}: no zone named {name!r}" + (f" (zones: {', '.join(names)})" if names else ""))

    for i, name in enumerate(required):
        known(f"{prefix}required_zones[{i}]", name)
    parsed: Profiles | None = None
    if profiles is not None:
        p = f"{prefix}profiles."
        if profiles.select in ("schedule", "ir_or_schedule") and profiles.night_hours is None:
            problems.append(
                f'{p}night_hours: missing, expected {{from: "HH:MM", to: "HH:MM"}} (select: {profiles.select})'
            )
        for pname in PROFILE_NAMES:
            prof: ProfileFile = getattr(profiles, pname)
            for i, name in enumerate(prof.required_zones or ()):
                known(f"{p}{pname}.required_zones[{i}]", name)
            for name in prof.zones:
                known(f"{p}{pname}.zones.{name}", name)
        hours = profiles.night_hours
        # select: none switches profiles off (their rules are kept in the file, unused), so an
        # operator can park a night profile; with nothing to switch, events carry no ``pf``.
        parsed = (
            None
            if profiles.select == "none"
            else Profiles(
                profiles.select,
                None if hours is None else (hours.start, hours.end),
                _profile(profiles.day),
                _profile(profiles.night),
            )
        )
    if problems:
        raise ConfigError(problems)
    return ZoneConfig(
        tuple(Zone(z.name, z.polygon, tuple(z.kinds), z.inertia_s, z.loiter_s) for z in zones),
        tuple(required),
        parsed,
    )


def _profile(p: ProfileFile) -> Profile:
    return Profile(
        p.score_threshold,
        p.confirm_hits,
        p.confirm_window,
        None if p.required_zones is None else tuple(p.required_zones),
        {name: ZoneRules(r.kinds, r.inertia_s, r.loiter_s) for name, r in p.zones.items()},
    )

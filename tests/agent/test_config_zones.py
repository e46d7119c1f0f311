"""The vision zone and profile keys: a bad one is a ConfigError naming the key (docs/zones.md)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from agent.config_vision import VisionConfig, parse_vision
from agent.config_zones import Profile, Profiles, Zone, ZoneRules
from agent.vision.profiles import rules_for
from xlconfig import ConfigError

GOOD: dict[str, Any] = {
    "zones": [
        {"name": "院门", "polygon": [[0.4, 0.5], [0.6, 0.5], [0.6, 1.0], [0.4, 1.0]]},
        {"name": "路", "polygon": [[0.0, 0.3], [1.0, 0.3], [1.0, 0.5], [0.0, 0.5]], "loiter_s": 60},
    ],
    "required_zones": ["院门", "路"],
    "profiles": {
        "select": "ir_or_schedule",
        "night_hours": {"from": "19:00", "to": "06:00"},
        "day": {},
        "night": {
            "score_threshold": 0.6,
            "confirm_hits": 3,
            "confirm_window": 5,
            "required_zones": ["院门"],
            "zones": {"路": {"loiter_s": 30}, "院门": {"inertia_s": 0.5, "kinds": ["person", "motion"]}},
        },
    },
}


def test_the_documented_example_parses() -> None:
    cfg = parse_vision(GOOD)
    gate = Zone("院门", ((0.4, 0.5), (0.6, 0.5), (0.6, 1.0), (0.4, 1.0)), ("person",), 1.0, 0.0)
    assert cfg.zones[0] == gate and cfg.zones[1].loiter_s == 60 and cfg.required_zones == ("院门", "路")
    assert cfg.profiles == Profiles(
        "ir_or_schedule",
        ("19:00", "06:00"),
        Profile(),
        Profile(0.6, 3, 5, ("院门",), {"路": ZoneRules(loiter_s=30), "院门": ZoneRules(("person", "motion"), 0.5)}),
    )
    night = rules_for(cfg, "night")
    assert (night.score_threshold, night.confirm_hits, night.confirm_window) == (0.6, 3, 5)
    assert night.required_zones == ("院门",)
    assert [(z.name, z.kinds, z.inertia_s, z.loiter_s) for z in night.zones] == [
        ("院门", ("person", "motion"), 0.5, 0.0),
        ("路", ("person",), 1.0, 30),
    ]
    day = rules_for(cfg, "day")
    assert day == cfg.rules and day.score_threshold == 0.5 and day.zones == cfg.zones


def test_unset_keys_are_todays_config() -> None:
    assert parse_vision({"zones": [], "required_zones": []}) == VisionConfig()
    assert parse_vision({"profiles": {"select": "none"}}).profiles is None  # none: no profiles, no pf


def edit(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = doc
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        if isinstance(node, list):
            node[int(last)] = value
        elif value is DELETE:
            del node[last]
        else:
            node[last] = value

    return apply


DELETE = object()
MANY = [{"name": f"z{i}", "polygon": [[0, 0], [1, 0], [1, 1]]} for i in range(9)]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("required_zones/0", "gat", "vision.required_zones[0]: no zone named 'gat'"),
        ("zones/1/name", "院门", "vision.zones[1].name: found '院门', expected a name no other zone has"),
        ("zones/1/name", "", "vision.zones[1].name: found '', expected a name of 1-24 characters"),
        ("zones/1/name", "x" * 25, "vision.zones[1].name: found 'xxxxxxxxxxxxxxxxxxxxxxxxx', expected a name of 1-24"),
        ("zones/0/name", DELETE, "vision.zones[0].name: missing"),
        # A control character (a NUL above all) in a name would make every event naming it
        # refused at the hub (protocol.fields): refused here, where the installer sees it.
        ("zones/1/name", "路\x00", "vision.zones[1].name: found '路\\x00', expected a name of 1-24 characters"),
        ("zones/1/name", "a\nb", "vision.zones[1].name: found 'a\\nb', expected a name of 1-24 characters"),
        ("zones/1/polygon", [[0, 0], [1, 1]], "vision.zones[1].polygon: found [[0, 0], [1, 1]], expected a polygon"),
        ("zones/1/polygon", [[0, 0], [2, 0], [1, 1]], "vision.zones[1].polygon[1][0]: found 2, expected a polygon"),
        ("zones/1/kinds", ["car"], "vision.zones[1].kinds[0]: found 'car', expected a list of kinds: person, motion"),
        ("zones/1/inertia_s", 61, "vision.zones[1].inertia_s: found 61, expected seconds 0..60"),
        ("zones/1/loiter_s", 3601, "vision.zones[1].loiter_s: found 3601, expected seconds 0..3600"),
        ("zones/1/colour", "red", "vision.zones[1].colour: found 'red', expected one of the known keys"),
        ("zones", MANY, "vision.zones: found [{'name': 'z0'"),
        ("zones", {"gate": {}}, "vision.zones: found {'gate': {}}, expected a list of at most 8 zones"),
        ("profiles/select", "moon", "vision.profiles.select: found 'moon', expected one of none, ir, schedule"),
        ("profiles/night_hours", DELETE, 'vision.profiles.night_hours: missing, expected {from: "HH:MM"'),
        ("profiles/night_hours/from", "7pm", "vision.profiles.night_hours.from: found '7pm', expected \"HH:MM\""),
        ("profiles/evening", {}, "vision.profiles.evening: found {}, expected one of the known keys"),
        ("profiles/night/score_threshold", 1.5, "vision.profiles.night.score_threshold: found 1.5, expected a number"),
        ("profiles/night/required_zones", ["院子"], "vision.profiles.night.required_zones[0]: no zone named '院子'"),
        ("profiles/night/zones/院子", {}, "vision.profiles.night.zones.院子: no zone named '院子'"),
        ("profiles/night/zones/路/loiter_s", -1, "vision.profiles.night.zones.路.loiter_s: found -1, expected seconds"),
        (
            "profiles/night/zones/路/lolter_s",
            1,
            "vision.profiles.night.zones.路.lolter_s: found 1, expected one",
        ),
    ],
)
def test_a_bad_zone_or_profile_names_its_key(path: str, value: Any, message: str) -> None:
    doc = copy.deepcopy(GOOD)
    edit(path, value)(doc)
    with pytest.raises(ConfigError) as err:
        parse_vision(doc, "agent.yaml")
    assert any(p.startswith(message) for p in err.value.problems), err.value.problems
    assert str(err.value).startswith("agent.yaml: ")


@pytest.mark.parametrize("char", ['"', "\\", "\U00020000", "\u202e"])
def test_the_longest_names_the_schema_allows_fit_an_event(char: str) -> None:
    """8 zones of 24 characters, each as long on the wire as a character can be (4 bytes, or an
    escaped quote), named in an event with every other key at its largest: within the 1 KB event
    limit. A control character (6 bytes escaped) would not fit: an event that cannot be encoded
    raised on the capture thread, which took the camera down on every visit into the zone."""
    from protocol.codec import encode
    from protocol.messages import Event

    polygon = [[0, 0], [1, 0], [1, 1]]
    names = [f"{i}" + char * 23 for i in range(8)]
    cfg = parse_vision({"zones": [{"name": n, "polygon": polygon} for n in names]})
    event = Event(
        event_id=2**53 - 1, kind="person", phase="update", time_ms=4102444800000, score=100,
        bbox=(1000, 1000, 1000, 1000), count=100, has_snapshot=True, duration_s=604800, clock_unsynced=True,
        seq=2**53 - 1, zones=tuple(z.name for z in cfg.zones), loiter_s=604800, no_alert=True, profile="p" * 16,
    )  # fmt: skip
    assert len(encode(event)) <= 1024
    with pytest.raises(ConfigError):
        parse_vision({"zones": [{"name": f"{i}" + "\x01" * 23, "polygon": polygon} for i in range(8)]})

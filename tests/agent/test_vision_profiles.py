"""Day and night profiles: chosen by the IR state or the schedule, switched between frames (docs/zones.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from agent.config_vision import VisionConfig, parse_vision
from agent.config_zones import Profiles
from agent.schedule import zone
from agent.vision.detector import PersonDetector
from agent.vision.pipeline import VisionPipeline, replay_clock
from agent.vision.profiles import ProfileSelector, rules_for
from agent.vision.synthetic import Actor, Scene, SyntheticSource
from agent.vision.tracker import Emitted
from protocol.ids import EventIdGenerator

pytest.importorskip("skimage.data")

SHANGHAI = zone("Asia/Shanghai")
GATE = [[0.0, 0.0], [0.1, 0.0], [0.1, 0.1]]  # up on the wall: nobody's feet go there


@pytest.fixture(scope="module")
def detector() -> Iterator[PersonDetector]:
    yield PersonDetector(num_threads=2, score_threshold=0.5)


def run(
    source: SyntheticSource, config: VisionConfig, detector: PersonDetector | None, clock_ms: int = 1_735_689_600_000
) -> tuple[list[Emitted], list[tuple[float, str | None]]]:
    """The events, and the profile after every frame."""
    pipe = VisionPipeline(config, detector, EventIdGenerator(3), replay_clock(clock_ms), timezone=SHANGHAI)
    events: list[Emitted] = []
    profiles: list[tuple[float, str | None]] = []
    source.open()
    while (frame := source.read()) is not None:
        events += pipe.process(frame)
        profiles.append((frame.ts, pipe.profile))
    events += pipe.finish()
    return events, profiles


def night_config(select: str = "ir", **extra: Any) -> VisionConfig:
    return parse_vision(
        {
            "zones": [{"name": "gate", "polygon": GATE}],
            "profiles": {
                "select": select,
                "night": {"score_threshold": 0.6, "confirm_hits": 3, "required_zones": ["gate"]},
                **extra,
            },
        }
    )


def test_the_ir_switch_brings_in_the_night_rules(detector: PersonDetector) -> None:
    # One walker by day (their visit over by 12 s), the IR light comes on at 13 s, another walker at night.
    scene = Scene(
        "day_then_night",
        24.0,
        actors=(
            Actor("astronaut", 1.5, 6.5, -0.2, 1.2, 0.97, 0.55),
            Actor("cameraman", 15.0, 22.0, 1.2, -0.2, 0.97, 0.5),
        ),
        ir_switch_at=13.0,
    )
    events, profiles = run(SyntheticSource(scene), night_config(), detector)
    assert {p for ts, p in profiles if ts < 13.0} == {"day"}
    assert {p for ts, p in profiles if ts >= 13.0} == {"night"}  # at the switch frame itself, no restart
    visits: dict[int, list[Emitted]] = {}
    for e in events:
        visits.setdefault(e.event.event_id, []).append(e)
    assert len(visits) == 2, [e.event.to_wire() for e in events]
    by_day, at_night = visits.values()
    # By day required_zones is unset: every phase may alert. At night only the gate may.
    assert all(e.event.profile == "day" and not e.event.no_alert for e in by_day)
    assert all(e.event.profile == "night" and e.event.no_alert for e in at_night)
    assert at_night[0].ts >= 15.0 and at_night[-1].event.phase == "end"


def test_night_threshold_and_confirmation_are_in_force_at_night(detector: PersonDetector) -> None:
    config = night_config()
    pipe = VisionPipeline(config, detector, EventIdGenerator(3), replay_clock())
    assert pipe.persons is not None
    src = SyntheticSource("light_switch")
    src.open()
    while (frame := src.read()) is not None and frame.ts < 9.0:
        pipe.process(frame)
        rules = (pipe.persons.threshold, pipe.persons.config.confirm_hits, pipe.persons.rules.required_zones)
        assert rules == ((0.6, 3, ("gate",)) if frame.ts >= 8.0 else (0.5, 2, ()))
    assert rules_for(config, "night").score_threshold == 0.6 and rules_for(config, "day") == config.rules


def test_schedule_picks_night_by_the_local_clock() -> None:
    # The replay clock starts at 18:59:55 in Shanghai (10:59:55 UTC): night from 19:00, 5 s in.
    start = dt.datetime(2026, 12, 1, 18, 59, 55, tzinfo=SHANGHAI)
    config = night_config("schedule", night_hours={"from": "19:00", "to": "06:00"})
    _, profiles = run(SyntheticSource("quiet", seconds=10), config, None, int(start.timestamp() * 1000))
    assert {p for ts, p in profiles if ts < 5.0} == {"day"}
    assert {p for ts, p in profiles if ts >= 5.0} == {"night"}


@pytest.mark.parametrize(
    ("select", "monochrome", "local", "expected"),
    [
        ("ir", True, "12:00", "night"),
        ("ir", False, "23:00", "day"),
        ("ir", None, "12:00", "day"),  # no colour information yet: the file's rules
        ("schedule", True, "12:00", "day"),
        ("schedule", False, "23:00", "night"),
        ("schedule", False, "05:59", "night"),
        ("schedule", False, "06:00", "day"),
        ("ir_or_schedule", True, "12:00", "night"),
        ("ir_or_schedule", False, "19:00", "night"),
        ("ir_or_schedule", False, "18:59", "day"),
    ],
)
def test_selection(select: str, monochrome: bool | None, local: str, expected: str) -> None:
    selector = ProfileSelector(Profiles(select, ("19:00", "06:00")), SHANGHAI)
    h, m = map(int, local.split(":"))
    when = dt.datetime(2026, 12, 1, h, m, tzinfo=SHANGHAI)
    assert selector.choose(monochrome, int(when.timestamp() * 1000)) == expected


def test_the_schedule_is_in_the_agents_time_zone() -> None:
    selector = ProfileSelector(Profiles("schedule", ("19:00", "06:00")), dt.UTC)
    eight_pm_shanghai = dt.datetime(2026, 12, 1, 20, 0, tzinfo=SHANGHAI)  # 12:00 UTC
    assert selector.choose(False, int(eight_pm_shanghai.timestamp() * 1000)) == "day"
    assert ProfileSelector(None).choose(True, 0) is None


def test_pf_only_with_profiles(detector: PersonDetector) -> None:
    plain, _ = run(SyntheticSource("walkthrough"), parse_vision({}), detector)
    # select: none parks the profiles: as if there were none.
    parked, _ = run(
        SyntheticSource("walkthrough"), parse_vision({"profiles": {"night": {"score_threshold": 0.9}}}), detector
    )
    day, _ = run(SyntheticSource("walkthrough"), parse_vision({"profiles": {"select": "ir"}}), detector)
    assert plain and all(e.event.profile is None for e in plain + parked)
    assert [e.event.to_wire() for e in parked] == [e.event.to_wire() for e in plain]
    assert day and all(e.event.to_wire()["pf"] == "day" for e in day)


def test_reconfigure_switches_profiles_at_once(detector: PersonDetector) -> None:
    pipe = VisionPipeline(parse_vision({}), detector, EventIdGenerator(3), replay_clock())
    src = SyntheticSource("light_switch")
    src.open()
    while (frame := src.read()) is not None and frame.ts < 10.0:
        pipe.process(frame)
    assert pipe.profile is None and pipe.motion.monochrome is True  # the IR light is on since 8 s
    pipe.reconfigure(night_config())
    assert pipe.persons is not None
    assert pipe.profile == "night" and pipe.persons.threshold == 0.6  # before the next frame
    pipe.reconfigure(parse_vision({}))
    assert pipe.profile is None and pipe.persons.threshold == 0.5 and pipe.persons.profile is None

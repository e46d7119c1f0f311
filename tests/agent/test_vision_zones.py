"""Zones, required zones, inertia and loitering (docs/zones.md).

The scenes run through the whole pipeline with the real packaged model; the
inertia rules are driven by scripted detections, where the feet can be put
exactly either side of a zone's edge.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from agent.config_vision import EventsConfig, parse_vision
from agent.config_zones import Rules, Zone
from agent.vision.detector import PersonDetector
from agent.vision.motion import MotionResult
from agent.vision.pipeline import VisionPipeline, replay_clock
from agent.vision.replay import event_line, run_replay
from agent.vision.synthetic import Actor, Scene, SyntheticSource
from agent.vision.tracker import Emitted, MotionTracker, PersonTracker
from agent.vision.zones import ZoneTrack, contains, feet
from protocol import codec
from protocol.ids import EventIdGenerator

pytest.importorskip("skimage.data")

ROAD = [[0.0, 0.85], [1.0, 0.85], [1.0, 1.0], [0.0, 1.0]]  # the strip the walkers' feet are on
GATE = [[0.5, 0.85], [0.8, 0.85], [0.8, 1.0], [0.5, 1.0]]  # a gate off the road, right of centre


@pytest.fixture(scope="module")
def detector() -> Iterator[PersonDetector]:
    yield PersonDetector(num_threads=2, score_threshold=0.5)


def person(events: list[Emitted]) -> list[Emitted]:
    return [e for e in events if e.event.kind == "person"]


def walk_road_then_gate(detector: PersonDetector, required: list[str]) -> list[Emitted]:
    config = parse_vision(
        {
            "zones": [
                {"name": "road", "polygon": ROAD, "inertia_s": 0},
                {"name": "gate", "polygon": GATE, "inertia_s": 0.5},
            ],
            "required_zones": required,
            # Only zone changes may send an update now: the gate's must not wait for this.
            "events": {"update_min_s": 60, "update_every_s": 600},
        }
    )
    return person(run_replay("synthetic:walkthrough", config, detector=detector).events)


def test_walk_along_the_road_then_through_the_gate(detector: PersonDetector) -> None:
    events = walk_road_then_gate(detector, ["gate"])
    actor = SyntheticSource("walkthrough").scene.actors[0]
    wires = [e.event.to_wire() for e in events]
    # Along the road: every phase is on the road and calls for no alert.
    gate_at = next(i for i, w in enumerate(wires) if "gate" in w.get("zn", []))
    assert gate_at >= 1 and wires[0]["p"] == "start"
    for w in wires[:gate_at]:
        assert w["zn"] == ["road"] and w["na"] == 1, wires
    # Through the gate: an update at once, on the road and then the gate, that may alert.
    gate = events[gate_at]
    assert gate.event.phase == "update" and gate.event.zones == ("road", "gate") and not gate.event.no_alert
    feet_in = next(t / 10 for t in range(300) if actor.centre_x(t / 10) >= 0.5)  # the feet reach the gate
    assert feet_in + 0.5 <= gate.ts <= feet_in + 0.5 + 0.8, (feet_in, gate.ts)  # inertia, then the next run
    assert gate.ts - events[gate_at - 1].ts < 60  # update_min_s did not hold it back
    for w in wires[gate_at:]:
        assert w["zn"] == ["road", "gate"] and "na" not in w
    assert wires[-1]["p"] == "end" and len({w["id"] for w in wires}) == 1
    for e in events:
        assert codec.decode_event(codec.encode(e.event)) == e.event
        line = event_line(e)  # the replay CLI's JSON lines say it too
        assert line["zones"] == list(e.event.zones or []) and line["no_alert"] == e.event.no_alert


def test_without_required_zones_no_phase_carries_na(detector: PersonDetector) -> None:
    events = walk_road_then_gate(detector, [])
    assert events and all(not e.event.no_alert for e in events)
    assert events[-1].event.zones == ("road", "gate")


def test_no_zones_means_the_events_of_before(detector: PersonDetector) -> None:
    events = person(run_replay("synthetic:walkthrough", parse_vision({}), detector=detector).events)
    assert events
    for e in events:
        wire = e.event.to_wire()
        assert not {"zn", "lo", "na", "pf"} & set(wire), wire


def loiter_config(polygon: list[list[float]], loiter_s: float) -> Any:
    return parse_vision(
        {
            "zones": [{"name": "road", "polygon": polygon, "loiter_s": loiter_s, "inertia_s": 0}],
            "required_zones": ["road"],
        }
    )


def test_standing_on_the_road_is_loitering(detector: PersonDetector) -> None:
    # Someone stops on the road in front of the house and stays there.
    scene = Scene("loiter", 16.0, actors=(Actor("cameraman", 2.0, 16.0, 0.30, 0.34, 0.97, 0.5),))
    events = person(run_replay(SyntheticSource(scene), loiter_config(ROAD, 5), detector=detector).events)
    first = events[0]
    assert first.event.phase == "start" and first.event.no_alert and first.event.loiter_s is None
    loiter = next(e for e in events if e.event.loiter_s is not None)
    assert loiter.event.phase == "update" and loiter.event.zones == ("road",) and not loiter.event.no_alert
    assert (loiter.event.loiter_s or 0) >= 5 and loiter.ts - first.ts >= 5 - 0.5
    assert loiter.ts - first.ts <= 5 + 1.5  # sent when the stay passed loiter_s, not much later
    assert all(e.event.no_alert for e in events if e.ts < loiter.ts)
    assert events[-1].event.phase == "end" and (events[-1].event.loiter_s or 0) >= 10  # the whole stay


def test_passing_along_the_road_is_not_loitering(detector: PersonDetector) -> None:
    road = [[0.3, 0.85], [0.7, 0.85], [0.7, 1.0], [0.3, 1.0]]  # ~2.3 s for a walker to cross
    events = person(run_replay("synthetic:walkthrough", loiter_config(road, 5), detector=detector).events)
    assert events
    for e in events:
        assert e.event.no_alert and e.event.zones is None and e.event.loiter_s is None


# -- inertia, scripted ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Det:
    score: float
    box: tuple[float, float, float, float]


def at(x: float) -> Det:
    """A person whose feet are at (x, 0.95)."""
    return Det(0.9, (x - 0.1, 0.4, x + 0.1, 0.95))


YARD = Zone("yard", ((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)), inertia_s=1.0)
RULES = Rules(0.5, 2, 3, (YARD,), ("yard",))
RGB = np.zeros((72, 128, 3), np.uint8)


def tracker(rules: Rules = RULES) -> PersonTracker:
    return PersonTracker(
        EventsConfig(update_min_s=60, update_every_s=600, end_after_s=30),
        EventIdGenerator(1),
        replay_clock(),
        rules=rules,
    )


def script(t: PersonTracker, runs: list[tuple[float, list[Det]]]) -> list[Emitted]:
    out: list[Emitted] = []
    for ts, dets in runs:
        out += t.observe(ts, dets, RGB) + t.tick(ts)
    return out


def test_jitter_across_a_zone_edge_does_not_enter_it() -> None:
    t = tracker()
    # Feet 0.02 either side of the edge, alternating every run for 3 s: never 1 s inside.
    runs = [(i * 0.3, [at(0.52 if i % 2 else 0.48)]) for i in range(10)]
    out = script(t, runs)
    assert [e.event.phase for e in out] == ["start"]
    assert t.visit is not None and t.visit.zones.entered == ()
    # Then the person stays just inside: after inertia_s, an update enters the yard at once.
    out = script(t, [(3.0 + i * 0.3, [at(0.52)]) for i in range(5)])
    assert [(e.event.phase, e.event.zones, e.event.no_alert) for e in out] == [("update", ("yard",), False)]
    # The stay began with the last jitter run (2.7 s, inside); the first run inertia_s after it enters.
    assert out[0].ts == pytest.approx(2.7 + 1.2)


def test_runs_that_find_nobody_do_not_break_a_stay() -> None:
    t = tracker()
    out = script(t, [(0.0, [at(0.7)]), (0.3, [at(0.7)]), (0.6, []), (0.9, []), (1.2, [at(0.7)])])
    assert [(e.event.phase, e.event.zones) for e in out] == [("start", None), ("update", ("yard",))]


def test_kinds_decide_which_kind_may_alert() -> None:
    motion_only = Rules(0.5, 2, 3, (Zone("yard", YARD.polygon, kinds=("motion",), inertia_s=0),), ("yard",))
    out = script(tracker(motion_only), [(i * 0.3, [at(0.7)]) for i in range(4)])
    assert out and all(e.event.zones == ("yard",) and e.event.no_alert for e in out)  # a person may not alert here
    motions = MotionTracker(EventsConfig(motion_start_s=0.2), EventIdGenerator(2), replay_clock(), rules=motion_only)
    moving = MotionResult(((0.6, 0.5, 0.8, 0.9),), 0.05, 0.05, "watching")
    emitted = [e for i in range(5) for e in motions.observe(i * 0.1, moving)]
    assert emitted[0].event.kind == "motion" and emitted[0].event.zones == ("yard",)
    assert not emitted[0].event.no_alert


def test_feet_and_polygon_geometry() -> None:
    assert feet((0.2, 0.1, 0.4, 0.9)) == pytest.approx((0.3, 0.9))
    triangle = ((0.0, 0.0), (1.0, 0.0), (0.0, 1.0))
    assert contains(triangle, (0.2, 0.2)) and not contains(triangle, (0.8, 0.8))
    assert contains(YARD.polygon, (0.7, 1.0))  # a box clipped at the frame's bottom is still in a zone drawn to it
    track = ZoneTrack()
    track.observe(0.0, [(0.0, 0.0, 0.2, 0.5)], [YARD])  # head in the yard? the feet are not
    assert track.observe(2.0, [(0.4, 0.0, 0.45, 0.5)], [YARD]) is False and track.entered == ()
    # A run that finds nobody is no break: inside, nobody, inside 1 s on is entered.
    track = ZoneTrack()
    inside = [(0.6, 0.2, 0.8, 0.9)]
    assert not track.observe(0.0, inside, [YARD]) and not track.observe(0.5, [], [YARD])
    assert track.observe(1.0, inside, [YARD]) and track.entered == ("yard",)


# -- reconfigure ----------------------------------------------------------------------------------------------

CORNER = [[0.0, 0.0], [0.2, 0.0], [0.2, 0.2], [0.0, 0.2]]  # a mask up on the wall, away from the walker


def reconfigured_walk(detector: PersonDetector, new: Any, at_ts: float = 6.0) -> tuple[list[Emitted], dict[str, Any]]:
    """The walkthrough with no zones, reconfigured to ``new`` at ``at_ts`` (mid-visit)."""
    pipe = VisionPipeline(parse_vision({}), detector, EventIdGenerator(4), replay_clock())
    src = SyntheticSource("walkthrough")
    src.open()
    events: list[Emitted] = []
    seen: dict[str, Any] = {}
    while (frame := src.read()) is not None:
        if frame.index == round(at_ts * 10):
            seen |= {"active": pipe.persons is not None and pipe.persons.active, "motion": pipe.motion}
            seen["moving"] = pipe.stats.motion_frames
            pipe.reconfigure(new)
        if frame.index == round(at_ts * 10) + 6:
            seen["moved_since"] = pipe.stats.motion_frames - seen["moving"]  # in the 0.6 s after
        events += pipe.process(frame)
    events += pipe.finish()
    seen |= {"pipe": pipe, "recalibrations": pipe.recalibrations}
    return person(events), seen


def test_reconfigure_mid_stream_keeps_the_background_and_the_visit(detector: PersonDetector) -> None:
    new = parse_vision({"masks": [CORNER], "zones": [{"name": "road", "polygon": ROAD, "inertia_s": 0}]})
    events, seen = reconfigured_walk(detector, new)
    pipe = seen["pipe"]
    assert seen["active"] and pipe.motion is seen["motion"] and seen["recalibrations"] == 0
    assert seen["moved_since"] >= 4  # motion went on being seen: no re-warm-up
    assert pipe.motion.settings.masks == new.motion.masks and pipe.masks.polygons == [list(map(tuple, CORNER))]
    assert len({e.event.event_id for e in events}) == 1  # the same visit throughout
    before = [e for e in events if e.ts < 6.0]
    after = [e for e in events if e.ts >= 6.0]
    assert before and all(e.event.zones is None for e in before)
    # The new zone at once: the next run that finds the walker on the road sends an update.
    assert after[0].event.phase == "update" and after[0].event.zones == ("road",) and after[0].ts < 6.5
    assert after[-1].event.phase == "end" and after[-1].event.zones == ("road",)


def test_reconfigure_with_new_motion_settings_relearns() -> None:
    # The contrast that shows the test above can fail: other motion settings, a new background.
    pipe = VisionPipeline(parse_vision({}), None, EventIdGenerator(4), replay_clock())
    src = SyntheticSource("walkthrough")
    src.open()
    moving = []
    while (frame := src.read()) is not None and frame.ts < 7.0:
        if frame.index == 50:
            before = pipe.motion
            pipe.reconfigure(parse_vision({"motion": {"threshold": 30}}))
            assert pipe.motion is not before and pipe.motion.settings.threshold == 30
        pipe.process(frame)
        moving.append(pipe.stats.motion_frames)
    assert moving[55] == moving[50]  # warming up again: no motion in the half second after

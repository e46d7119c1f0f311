"""Visit lifecycle and detection gating, driven by scripted detections.

These check the rules (confirmation, rate limits, timeouts, when detection may
run); the real model and real scenes are in test_vision_pipeline.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pytest

from agent.config_vision import DetectConfig, EventsConfig, VisionConfig
from agent.vision.motion import MotionResult
from agent.vision.pipeline import VisionPipeline, replay_clock
from agent.vision.snapshot import make_snapshot
from agent.vision.synthetic import SyntheticSource
from agent.vision.tracker import MotionTracker, PersonTracker, permille
from protocol import codec
from protocol.ids import EventIdGenerator, split_event_id


@dataclass(frozen=True)
class Det:
    score: float
    box: tuple[float, float, float, float]


P = Det(0.9, (0.4, 0.3, 0.6, 0.9))
RGB = np.zeros((72, 128, 3), np.uint8)


def tracker(**kw: float) -> PersonTracker:
    return PersonTracker(EventsConfig(**kw), EventIdGenerator(7), replay_clock(1_800_000_000_000))  # type: ignore[arg-type]


def feed(t: PersonTracker, script: list[tuple[float, list[Det]]]) -> list[tuple[str, float]]:
    out = []
    for ts, dets in script:
        for e in t.observe(ts, dets, RGB) + t.tick(ts):
            out.append((e.event.phase, e.ts))
    return out


def test_one_hit_is_not_a_visit() -> None:
    t = tracker()
    assert feed(t, [(0.0, [P]), (0.5, []), (1.0, []), (1.5, [])]) == []
    assert not t.active


def test_confirmed_visit_start_and_end_share_one_id() -> None:
    t = tracker(end_after_s=5.0)
    events = []
    for ts, dets in [(0.0, [P]), (0.4, [P]), (0.8, [P])]:
        events += t.observe(ts, dets, RGB)
    assert [e.event.phase for e in events] == ["start"]
    start = events[0]
    assert start.ts == 0.0  # the visit began at the first hit, not at confirmation
    assert start.event.time_ms == 1_800_000_000_000
    assert split_event_id(start.event.event_id) == (7, 0)
    assert start.event.bbox == (400, 300, 600, 900) and start.event.count == 1 and start.event.score == 90
    assert t.tick(5.7) == []
    (end,) = t.tick(5.8)
    assert end.event.phase == "end" and end.event.event_id == start.event.event_id
    assert end.ts == 0.8 and end.event.duration_s == 1
    assert codec.decode_event(codec.encode(end.event)) == end.event


def test_median_guards_against_a_flicker() -> None:
    weak = Det(0.3, P.box)
    t = tracker()
    # Two hits but the median of the last three runs is a miss: no start yet.
    assert feed(t, [(0.0, [P]), (0.3, []), (0.6, [weak]), (0.9, [P])]) == []
    assert feed(t, [(1.2, [P])]) == [("start", 0.0)]


def test_old_hits_do_not_combine_with_new_ones() -> None:
    t = tracker(confirm_span_s=2.0)
    assert feed(t, [(0.0, [P]), (10.0, [P])]) == []
    assert feed(t, [(10.5, [P])]) == [("start", 10.0)]


def test_updates_are_rate_limited_and_significant() -> None:
    t = tracker(update_min_s=3.0, update_every_s=30.0)
    feed(t, [(0.0, [P]), (0.3, [P])])
    moved = Det(0.9, (0.0, 0.3, 0.2, 0.9))
    two = [P, moved]
    # Small jitter: never an update. A big move: update, but not before 3 s.
    assert feed(t, [(0.6, [Det(0.9, (0.41, 0.3, 0.61, 0.9))]), (1.0, [moved])]) == []
    assert feed(t, [(3.4, [moved])]) == [("update", 3.4)]
    assert feed(t, [(4.0, two)]) == []  # count changed, too soon
    out = feed(t, [(6.5, two)])
    assert out == [("update", 6.5)]
    assert t.visit is not None and t.visit.count == 2
    # Nothing changes for a long time: the periodic update.
    assert feed(t, [(20.0, two), (36.4, two), (36.6, two)]) == [("update", 36.6)]


def test_finish_ends_an_open_visit() -> None:
    t = tracker()
    feed(t, [(0.0, [P]), (0.3, [P])])
    (end,) = t.finish()
    assert end.event.phase == "end" and not t.active and t.finish() == []


def test_snapshot_on_start_and_when_clearly_better() -> None:
    shots: list[tuple[str, float]] = []

    def snap(rgb: np.ndarray, box: object, event_id: int, phase: str, time_ms: int) -> codec.Snapshot:
        shots.append((phase, time_ms))
        return codec.Snapshot(event_id, phase, time_ms, 8, 8, b"\xff\xd8..\xff\xd9")

    t = PersonTracker(EventsConfig(update_min_s=0.0), EventIdGenerator(0), replay_clock(0), 0.5, snap)
    out = []
    for ts, s in [(0.0, 0.6), (0.3, 0.62), (0.6, 0.65), (0.9, 0.95)]:
        out += t.observe(ts, [Det(s, P.box)], RGB)
    out += t.finish()
    assert [(e.event.phase, e.event.has_snapshot) for e in out] == [
        ("start", True),
        ("update", True),  # 0.95 beats the start snapshot's 0.62 by more than 0.1
        ("end", False),
    ]
    assert [p for p, _ in shots] == ["start", "update"]


def test_motion_events() -> None:
    mt = MotionTracker(EventsConfig(motion_start_s=0.5, motion_end_s=2.0), EventIdGenerator(0), replay_clock(0))
    moving = MotionResult(((0.1, 0.1, 0.3, 0.5),), 0.12, 0.1, "watching")
    still = MotionResult((), 0.0, 0.0, "watching")
    phases = []
    for i in range(50):
        ts = i / 10
        for e in mt.observe(ts, moving if 1.0 <= ts <= 2.0 else still):
            phases.append((e.event.phase, e.ts, e.event.kind, e.event.score))
    assert phases == [("start", 1.0, "motion", 12), ("end", 2.0, "motion", 12)]


def test_permille_clamps_and_orders() -> None:
    assert permille((-0.1, 0.5, 1.2, 0.25)) == (0, 250, 1000, 500)
    assert permille(None) is None


# -- gating in the pipeline, with a counting fake detector ----------------------
class CountingDetector:
    runtime_name = "fake"

    def __init__(self, hits: bool) -> None:
        self.hits = hits
        self.calls: list[tuple[float, tuple[int, int, int, int] | None]] = []
        self.last_inference_ms: float | None = None
        self.now = 0.0

    def detect(self, rgb: np.ndarray, region: tuple[int, int, int, int] | None = None) -> list[Det]:
        self.calls.append((self.now, region))
        self.last_inference_ms = 1.0
        return [P] if self.hits else []


def run_pipeline(scene: str, det: CountingDetector, config: VisionConfig, pir_at: float | None = None) -> list:
    pipe = VisionPipeline(config, det, EventIdGenerator(0), replay_clock())
    src = SyntheticSource(scene)
    src.open()
    events = []
    while (frame := src.read()) is not None:
        det.now = frame.ts
        pir = pir_at is not None and abs(frame.ts - pir_at) < 1e-6
        events += pipe.process(frame, pir=pir)
    return events + pipe.finish()


def test_detection_only_on_motion_and_at_most_detect_fps() -> None:
    det = CountingDetector(hits=False)
    config = VisionConfig(detect=DetectConfig(detect_fps=2.0))
    run_pipeline("walkthrough", det, config)
    times = [ts for ts, _ in det.calls]
    assert times and all(3.0 <= ts <= 11.5 for ts in times)
    assert all(b - a >= 0.5 - 1e-9 for a, b in itertools.pairwise(times))
    assert len(times) <= 2 * 8.5 + 1
    # Crops are squares around the walker (never the whole frame here).
    for _, region in det.calls:
        assert region is not None
        x1, y1, x2, y2 = region
        assert x2 - x1 == y2 - y1 >= 300


def test_pir_triggers_a_whole_frame_look_without_motion() -> None:
    det = CountingDetector(hits=False)
    run_pipeline("quiet", det, VisionConfig(), pir_at=5.0)
    assert det.calls == [(5.0, None)]


def test_a_visit_keeps_being_checked_when_the_person_stands_still() -> None:
    det = CountingDetector(hits=True)
    config = VisionConfig(detect=DetectConfig(track_check_fps=1.0), events=EventsConfig(end_after_s=3.0))
    events = run_pipeline("walkthrough", det, config)
    person = [e for e in events if e.event.kind == "person"]
    assert person[0].event.phase == "start" and person[-1].event.phase == "end"
    # The fake always "sees" someone, so after motion stops the visit is kept
    # alive by the once-a-second checks until the stream ends.
    after = [ts for ts, _ in det.calls if ts > 12.0]
    assert after and all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(after))
    assert person[-1].ts == pytest.approx(max(ts for ts, _ in det.calls))


def test_motion_events_when_detection_is_off() -> None:
    config = VisionConfig(detect=DetectConfig(enabled=False))
    assert config.motion_events
    pipe = VisionPipeline(config, None, EventIdGenerator(0), replay_clock())
    src = SyntheticSource("walkthrough")
    src.open()
    events = []
    while (frame := src.read()) is not None:
        events += pipe.process(frame)
    events += pipe.finish()
    assert [(e.event.kind, e.event.phase) for e in events] == [("motion", "start"), ("motion", "end")]
    assert 3.0 <= events[0].ts <= 4.5 and events[1].event.duration_s is not None
    assert pipe.stats.inference_runs == 0


def test_the_snapshot_carries_the_box_of_its_own_frame_when_the_person_has_moved_on() -> None:
    """The event's box is where the person is now; the picture is the visit's best
    frame, from earlier. The snapshot must say where the person is in *its* frame
    (header "b"), or the platform gets a box that misses them (issue 13.3)."""

    def snap(
        rgb: np.ndarray, box: tuple[float, float, float, float] | None, event_id: int, phase: str, time_ms: int
    ) -> codec.Snapshot:
        return make_snapshot(rgb, event_id=event_id, phase=phase, time_ms=time_ms, box=box)

    rgb = np.zeros((360, 640, 3), np.uint8)
    rgb[:, :, 1] = np.linspace(0, 255, 640, dtype=np.uint8)  # something to encode, cheaply
    t = PersonTracker(EventsConfig(update_min_s=0.0), EventIdGenerator(0), replay_clock(0), 0.5, snap)
    best, later = (0.10, 0.30, 0.25, 0.90), (0.60, 0.30, 0.75, 0.90)
    out = t.observe(0.0, [Det(0.97, best)], rgb) + t.observe(0.3, [Det(0.7, later)], rgb)
    (start,) = [e for e in out if e.event.phase == "start"]
    assert start.snapshot is not None
    assert start.event.bbox == permille(later)  # the event says where the person is now
    assert start.snapshot.box == permille(best)  # the picture says where they were in it
    decoded = codec.decode_snapshot(codec.encode_snapshot(start.snapshot))
    assert decoded.box == permille(best)

"""The whole vision pipeline with the real packaged model on the real TFLite interpreter.

Scenes are synthetic but their people and non-people are real photographs
(scikit-image's astronaut, cameraman, cat and coffee cup).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import simplejpeg

from agent.config_vision import ClutterConfig, DetectConfig, EventsConfig, VisionConfig
from agent.vision.detector import PersonDetector
from agent.vision.frame import FrameSource
from agent.vision.motion import MotionSettings, settings_for
from agent.vision.replay import ReplayResult, run_replay
from agent.vision.snapshot import make_snapshot
from agent.vision.sources import ImageDirSource
from agent.vision.synthetic import Actor, Scene, SyntheticSource
from protocol import codec

pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def detector() -> Iterator[PersonDetector]:
    yield PersonDetector(num_threads=2, score_threshold=0.5)


def replay(source: str | FrameSource, detector: PersonDetector, config: VisionConfig | None = None) -> ReplayResult:
    return run_replay(source, config or VisionConfig(), detector=detector)


def phases(result: ReplayResult, kind: str = "person") -> list[str]:
    return [e.event.phase for e in result.events if e.event.kind == kind]


def test_walkthrough_is_exactly_one_visit(detector: PersonDetector) -> None:
    result = replay("synthetic:walkthrough", detector)
    assert phases(result) == ["start", "update", "end"] or phases(result) == ["start", "end"]
    start, end = result.events[0], result.events[-1]
    assert start.event.event_id == end.event.event_id
    assert 3.0 <= start.ts <= 5.0  # in view from 3 s
    assert 8.5 <= end.ts <= 11.0 and end.event.duration_s is not None and end.event.duration_s >= 4
    assert start.score >= 0.5 and start.event.count == 1 and start.event.has_snapshot
    # The start box sits where the astronaut was at that moment.
    actor = SyntheticSource("walkthrough").scene.actors[0]
    x1, y1, x2, y2 = start.bbox or (0, 0, 0, 0)
    assert x1 - 0.1 <= actor.centre_x(start.ts) <= x2 + 0.1 and y1 < 0.6 and y2 > 0.85
    s = result.summary
    assert s["person_events"] == 1 and s["motion_events"] == 0
    assert 10 <= s["inference_runs"] <= 3 * 9  # only while someone moves, ≤ detect_fps
    for e in result.events:
        assert codec.decode_event(codec.encode(e.event)) == e.event


@pytest.mark.parametrize("sprite", ["astronaut", "cameraman"])
def test_person_photos_are_detected_walking_through(detector: PersonDetector, sprite: str) -> None:
    scene = Scene(f"{sprite}_walk", 14.0, actors=(Actor(sprite, 2.0, 10.0, 1.2, -0.2, 0.97, 0.5),))
    result = replay(SyntheticSource(scene), detector)
    assert phases(result)[0] == "start" and phases(result)[-1] == "end"
    assert result.summary["person_events"] == 1


def test_small_distant_person_is_found_through_the_crop(detector: PersonDetector) -> None:
    # 0.25 of the frame high (180 px): on the whole 1280x720 frame shrunk to
    # 300x300 this person would be ~75 px; the 300 px crop keeps it at full size.
    scene = Scene("far", 12.0, actors=(Actor("astronaut", 1.5, 10.5, 0.1, 0.9, 0.6, 0.25),))
    config = VisionConfig(motion=settings_for("high"))
    result = replay(SyntheticSource(scene), detector, config)
    assert result.summary["person_events"] == 1


@pytest.mark.parametrize("scene", ["cat", "coffee", "vegetation"])
def test_non_people_make_no_person_event(detector: PersonDetector, scene: str) -> None:
    # Clutter learning off: the model itself must see no person in the bush
    # (tests/agent/test_vision_clutter.py has the pipeline looking less).
    result = replay(f"synthetic:{scene}", detector, VisionConfig(clutter=ClutterConfig(enabled=False)))
    assert result.summary["motion_frames"] > 30  # something did move ...
    assert result.summary["inference_runs"] > 10  # ... and the model did look at it
    assert phases(result) == []


def test_light_switch_gives_no_event_and_counts_a_recalibration(detector: PersonDetector) -> None:
    result = replay("synthetic:light_switch", detector, VisionConfig(events=EventsConfig(motion_events=True)))
    assert result.events == []
    assert result.summary["recalibrations"] == 1
    assert result.summary["clutter"]["resets"] == 1  # the learner forgot its map with the switch
    # The switch is looked at (whole frame + 2 tiles, twice), and it finds nobody.
    assert result.summary["inference_runs"] == result.summary["relearn_runs"] == 6


def test_quiet_scene_runs_no_inference_after_calibration(detector: PersonDetector) -> None:
    result = replay("synthetic:quiet?seconds=30", detector)
    s = result.summary
    assert s["frames"] == 300 and s["motion_frames"] == 0 and s["inference_runs"] == 0
    assert result.events == []


def test_dusk_person_after_the_ir_switch(detector: PersonDetector) -> None:
    result = replay("synthetic:dusk", detector)
    assert result.summary["recalibrations"] == 1
    assert result.summary["person_events"] == 1
    assert result.events[0].ts >= 24.0  # the person, not the light change


def test_mask_over_the_bush_means_no_detection_runs(detector: PersonDetector) -> None:
    bush = ((0.6, 0.1), (1.0, 0.1), (1.0, 0.8), (0.6, 0.8))
    plain = replay("synthetic:vegetation", detector, VisionConfig(clutter=ClutterConfig(enabled=False)))
    masked = replay("synthetic:vegetation", detector, VisionConfig(motion=MotionSettings(masks=(bush,))))
    assert plain.summary["inference_runs"] > 10
    assert masked.summary["motion_frames"] == 0 and masked.summary["inference_runs"] == 0


def test_person_photos_from_an_image_folder(detector: PersonDetector, tmp_path: Path) -> None:
    from skimage import data

    # A still yard, then the real photos pasted in, as an installer's test folder might hold.
    src = SyntheticSource("quiet", seconds=1, width=640, height=480)
    src.open()
    yard = src.read()
    assert yard is not None
    background = yard.rgb.copy()
    astronaut = data.astronaut()[::2, ::2]  # 256x256
    for i in range(16):
        frame = background.copy()
        if i >= 8:
            left = 60 + 20 * (i - 8)
            frame[200:456, left : left + 256] = astronaut
        (tmp_path / f"{i:03d}.jpg").write_bytes(simplejpeg.encode_jpeg(np.ascontiguousarray(frame), 90))
    config = VisionConfig(motion=MotionSettings(warmup_s=0.5), detect=DetectConfig(detect_fps=5.0))
    result = replay(ImageDirSource(tmp_path, fps=4), detector, config)
    assert phases(result) == ["start", "end"]
    assert result.events[0].ts == pytest.approx(2.0)  # frame 8 at 4 fps


def test_busy_scene_real_time_factor(detector: PersonDetector) -> None:
    result = replay("synthetic:busy", detector)
    s = result.summary
    assert s["person_events"] >= 2
    assert s["inference_runs"] <= 3 * 30  # never above detect_fps
    # Generous bound (CI shares its cores): the figure itself is in bench/vision.py.
    assert s["pipeline_rtf"] < 0.5


def test_snapshot_fits_the_budget_and_decodes() -> None:
    src = SyntheticSource("walkthrough")
    src.open()
    for _ in range(70):
        frame = src.read()
    assert frame is not None
    snap = make_snapshot(frame.rgb, event_id=5, phase="start", time_ms=1_800_000_000_000, box=(0.4, 0.42, 0.62, 0.97))
    assert len(snap.jpeg) <= 12_000
    assert snap.crop is not None and snap.crop[0] < 400 and snap.crop[2] > 620
    h, w = simplejpeg.decode_jpeg_header(snap.jpeg)[:2]
    assert (w, h) == (snap.width, snap.height)
    assert codec.decode_snapshot(codec.encode_snapshot(snap)) == snap
    whole = make_snapshot(frame.rgb, event_id=5, phase="end", time_ms=1, crop=False, max_bytes=6000)
    assert whole.crop is None and len(whole.jpeg) <= 6000 and whole.width <= 640

"""Masked areas never leave the device in a snapshot (issue 18: "as they are in snapshots")."""

from __future__ import annotations

import numpy as np
import simplejpeg

from agent.vision.masks import MaskCache, black_out
from agent.vision.snapshot import make_snapshot

LEFT_HALF = [[(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]]


def _bright(w: int = 640, h: int = 360) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(150, 255, (h, w, 3), dtype=np.uint8)


def test_a_masked_area_is_black_in_the_jpeg_and_the_frame_is_untouched() -> None:
    frame = _bright()
    before = frame.copy()
    mask = MaskCache(LEFT_HALF).at(640, 360)
    snap = make_snapshot(frame, event_id=1, phase="start", time_ms=0, crop=False, mask=mask)
    img = simplejpeg.decode_jpeg(snap.jpeg)
    w = img.shape[1]
    assert img[:, : w // 2 - 8].max() < 40  # black, give or take JPEG ringing at the edge
    assert img[:, w // 2 + 8 :].mean() > 150
    assert np.array_equal(frame, before)  # the pipeline's frame is not blacked out


def test_a_crop_inside_the_mask_is_black_too() -> None:
    frame = _bright(1280, 720)
    mask = MaskCache(LEFT_HALF).at(1280, 720)
    snap = make_snapshot(frame, event_id=2, phase="start", time_ms=0, box=(0.1, 0.2, 0.2, 0.6), mask=mask)
    assert snap.crop is not None and snap.crop[2] <= 500
    assert simplejpeg.decode_jpeg(snap.jpeg).max() < 40


def test_no_masks_no_copy() -> None:
    cache = MaskCache([])
    frame = _bright()
    assert cache.at(640, 360) is None and black_out(frame, None) is frame
    full = MaskCache(LEFT_HALF)
    assert full.at(640, 360) is full.at(640, 360)  # rasterised once per size


def test_the_pipeline_masks_its_event_snapshots() -> None:
    from agent.config_vision import VisionConfig
    from agent.vision.motion import MotionSettings
    from agent.vision.pipeline import VisionPipeline, replay_clock
    from protocol.ids import EventIdGenerator

    pipeline = VisionPipeline(
        VisionConfig(motion=MotionSettings(masks=tuple(LEFT_HALF))), None, EventIdGenerator(1), replay_clock()
    )
    snap = pipeline._snapshot(_bright(), None, 5, "start", 0)
    assert snap is not None
    img = simplejpeg.decode_jpeg(snap.jpeg)
    assert img[:, : img.shape[1] // 2 - 8].max() < 40 and img[:, img.shape[1] // 2 + 8 :].mean() > 150


def test_the_detector_sees_the_masks_blacked_out() -> None:
    """As on the hardware clip path, where the camera's pre_callback masks the main stream:
    a person wholly inside a mask starts no visit on any Pi."""
    from agent.config_vision import ClutterConfig, VisionConfig
    from agent.vision.frame import Frame
    from agent.vision.motion import MotionSettings
    from agent.vision.pipeline import VisionPipeline, replay_clock
    from protocol.ids import EventIdGenerator

    seen: list[np.ndarray] = []

    class Recording:
        runtime_name = "recording"
        last_inference_ms: float | None = None

        def detect(self, rgb: np.ndarray, region: object = None) -> list[object]:
            seen.append(rgb.copy())
            return []

    off = ClutterConfig(enabled=False)  # _detect is called by hand here, before any motion step
    masked = VisionPipeline(
        VisionConfig(motion=MotionSettings(masks=tuple(LEFT_HALF)), clutter=off),
        Recording(),
        EventIdGenerator(1),
        replay_clock(),
    )
    rgb = _bright(320, 180)
    frame = Frame(0.0, 0, rgb[:, :, 1].copy(), (320, 180), rgb=rgb)
    masked._detect(frame, None)
    assert seen[-1][:, :150].max() == 0 and seen[-1][:, 170:].min() >= 150
    assert np.array_equal(frame.rgb, rgb)  # the frame itself is untouched (the clip and motion still have it)
    # A crop clear of the mask is read as it is (no copy); one reaching into it is blacked out.
    assert masked._masked(frame, (200, 0, 320, 180)) is frame.rgb
    touching = masked._masked(frame, (150, 0, 320, 180))
    assert touching is not frame.rgb and touching[:, :150].max() == 0
    plain = VisionPipeline(VisionConfig(clutter=off), Recording(), EventIdGenerator(1), replay_clock())
    plain._detect(frame, None)
    assert np.array_equal(seen[-1], rgb)  # no masks: the frame as it is

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

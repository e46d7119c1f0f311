"""The device recorder end to end: real frames → libx264 → ring → MP4, decoded back with PyAV."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from agent.clips.store import Clip
from agent.vision.synthetic import SyntheticSource
from tests.support.clip_device import EPOCH_MS, decode, emitted, feed, make_recorder

pytest.importorskip("av")
VTEST = Path(__file__).resolve().parents[2] / "var" / "clips" / "vtest.avi"


def test_walkthrough_clip_has_pre_roll_visit_and_post_roll(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path)
    # The person of "walkthrough" is in view 3-11 s; the visit as the tracker dates it.
    visits = {6.0: [emitted(7, "start", 4.0)], 8.0: [emitted(7, "update", 8.0)], 11.0: [emitted(7, "end", 10.0)]}
    feed(rec, SyntheticSource("walkthrough", width=640, height=360, fps=10), visits)
    # The ring kept ring_s (30 s: all 20 s here), as complete segments with sidecars, and one being written.
    ring = sorted((tmp_path / "clips" / "ring").iterdir())
    assert len([p for p in ring if p.suffix == ".h264"]) == 4 and len([p for p in ring if p.suffix == ".part"]) == 1
    side = json.loads(next(p for p in ring if p.suffix == ".json").read_text())
    assert side["frames"] == len(side["ts"]) == 20 and side["first"] == 0.0
    rec.stop(close=False)
    assert not list((tmp_path / "clips" / "ring").iterdir())  # a stream that ended leaves no ring behind
    clip = rec.store.get(7)
    assert clip is not None and rec.clips_cut == 1 and rec.dropped == 0
    # pre_s 5 before 4.0 and post_s 5 after 10.0, widened to 4 s segments: 0.0 .. 15.8 at 5 fps.
    frames, duration, profile = decode(tmp_path / "clips" / "7.mp4")
    assert len(frames) == 80 and duration == pytest.approx(16.0, abs=0.05)
    assert frames[0].key_frame and profile == "Constrained Baseline"
    assert float(frames[0].time) <= 4.0 - 5.0 + 4.0  # the pre-roll: video from before the visit's start
    assert [f.width for f in frames[:1]] == [640] and frames[0].height == 360
    keys = [i for i, f in enumerate(frames) if f.key_frame]
    assert keys == list(range(0, 80, 20))  # one keyframe per 4 s segment, nowhere else
    assert clip.kind == "person" and not clip.keep and not clip.uploaded
    assert clip.start_ms == EPOCH_MS and clip.end_ms - clip.start_ms == 15_800
    assert [d[0] - EPOCH_MS for d in clip.detections] == [4000, 8000, 10000]
    assert clip.bytes == (tmp_path / "clips" / "7.mp4").stat().st_size
    assert (tmp_path / "clips" / "7.mp4").read_bytes()[:64].find(b"moov") > 0  # +faststart: index first


def test_masks_are_black_in_the_decoded_clip_and_armed_person_is_kept(tmp_path: Path) -> None:
    mask = ((0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5))
    rec = make_recorder(tmp_path, masks=[mask], armed=True, pre_s=1.0, post_s=1.0)
    feed(
        rec,
        SyntheticSource("walkthrough", width=1280, height=720, fps=10, seconds=8),
        {2.0: [emitted(3, "start", 4.0), emitted(3, "end", 5.0)]},
    )
    rec.stop(close=False)
    frames, _, _ = decode(tmp_path / "clips" / "3.mp4")
    assert frames
    for f in frames:
        rgb = f.to_ndarray(format="rgb24")
        assert rgb[4:176, 4:316].max() <= 12  # inside the mask (320x180 of 640x360), chroma edges aside
        assert rgb[200:, 330:].mean() > 40  # the rest is the yard
    clip = rec.store.get(3)
    assert clip is not None and clip.keep


def test_a_long_visit_keeps_its_start_beyond_the_ring(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path, ring_s=8.0, pre_s=2.0, post_s=2.0, fps=5.0)
    feed(
        rec,
        SyntheticSource("quiet", width=320, height=180, fps=5, seconds=30),
        {3.0: [emitted(9, "start", 3.0)], 24.0: [emitted(9, "end", 24.0)]},
    )
    rec.stop(close=False)
    frames, duration, _ = decode(tmp_path / "clips" / "9.mp4")
    # 1.0 .. 26.0 s widened to segments: 0.0 .. 27.8 s; the ring alone (8 s) would have lost the start.
    assert duration == pytest.approx(28.0, abs=0.05) and len(frames) == 140


def test_stream_end_cuts_open_visits_and_the_next_stream_starts_clean(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path)
    feed(rec, SyntheticSource("quiet", width=320, height=180, fps=5, seconds=6), {2.0: [emitted(1, "start", 2.0)]})
    rec.stream_ended()  # the capture loop's _finish: the visit ends with the stream
    feed(
        rec,
        SyntheticSource("quiet", width=320, height=180, fps=5, seconds=6),
        {1.0: [emitted(2, "start", 1.0), emitted(2, "end", 1.5)]},
    )
    rec.stop(close=False)
    assert [c.event_id for c in rec.store.all()] == [1, 2]
    frames, _, _ = decode(tmp_path / "clips" / "1.mp4")
    assert len(frames) == 30 and frames[0].key_frame  # all 6 s: the visit started 2 s in, pre_s 5


def test_panic_gets_a_clip_around_the_press(tmp_path: Path) -> None:
    from protocol.messages import Event

    rec = make_recorder(tmp_path, pre_s=2.0, post_s=2.0)
    source = SyntheticSource("quiet", width=320, height=180, fps=5, seconds=10)
    feed(rec, source, {}, limit=25)  # 5 s in
    rec.panic(Event(event_id=5, kind="panic", phase="start", time_ms=EPOCH_MS, score=100))
    feed(rec, SyntheticSource("quiet", width=320, height=180, fps=5, seconds=10), {})  # ts restarts: a new stream
    rec.stop(close=False)
    clip = rec.store.get(5)
    assert clip is not None and clip.keep and clip.kind == "panic"


def test_frames_are_dropped_not_queued_when_the_encoder_is_behind(tmp_path: Path) -> None:
    rec = make_recorder(tmp_path, fps=5.0)
    source = SyntheticSource("quiet", width=640, height=360, fps=5, seconds=20)
    source.open()
    taken = sum(rec.offer(f) for f in iter(source.read, None))  # 100 frames at once, no waiting
    assert rec.drain()
    rec.stop(close=False)
    assert taken + rec.dropped == 100 and rec.frames == taken and taken >= 10


@pytest.mark.slow
def test_real_pedestrian_video_file(tmp_path: Path) -> None:
    """OpenCV's vtest.avi (768x576, 10 fps), fetched by tools/fetch-test-clips.sh."""
    if not VTEST.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{VTEST} missing: tools/fetch-test-clips.sh did not run or failed")
        pytest.skip(f"{VTEST} not fetched (run tools/fetch-test-clips.sh)")
    pytest.importorskip("cv2")
    from agent.vision.sources import VideoFileSource

    rec = make_recorder(tmp_path)
    n = feed(
        rec, VideoFileSource(VTEST), {12.0: [emitted(4, "start", 8.0)], 14.0: [emitted(4, "end", 12.0)]}, limit=220
    )
    rec.stop(close=False)
    assert n == 220
    frames, duration, _ = decode(tmp_path / "clips" / "4.mp4")
    # 3.0 .. 17.0 s widened to 4 s segments: 0.0 .. 19.8 s, 100 frames at 5 fps from the 10 fps file.
    assert frames[0].key_frame and len(frames) == 100 and duration == pytest.approx(20.0, abs=0.05)
    grey = np.mean([f.to_ndarray(format="gray").std() for f in frames[::10]])
    assert grey > 20  # a picture, not a blank: the plaza and its pedestrians
    clip = rec.store.get(4)
    assert isinstance(clip, Clip) and clip.bytes < 2_000_000

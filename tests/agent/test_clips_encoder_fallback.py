"""clips.encoder: auto falls back to libx264 when the hardware encoder will not start or goes silent, hardware
fails clearly instead; through PicameraSource's hooks over a fake picamera2 (tests/support/fake_picamera2.py),
the clips decoded back. What a real bcm2835 codec does when it fails is only seen on a Pi (docs/clips.md)."""

from __future__ import annotations

import logging
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.clips import recorder as recorder_mod
from agent.clips.encoder import Picamera2Encoder, PyAvEncoder
from agent.clips.recorder import Recorder
from agent.config import ClipsConfig
from agent.vision.camera import PicameraSource
from tests.support import fake_picamera2
from tests.support.clip_device import EPOCH_MS, decode, emitted, feed
from tests.support.fake_picamera2 import BUSY, EncodingCamera

CAMERA = (320, 180)  # the hardware encoder's size (the camera's main stream) ...
CLIP = (160, 90)  # ... and libx264's (clips.width x height): which one made a clip shows in its size
QUARTER = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)]


class Clock:
    """Camera time, 5 fps: the camera advances it per request, and stamps frames and access units with it."""

    def __init__(self) -> None:
        self.now = -0.2

    def __call__(self) -> float:
        return self.now


class TickingCamera(EncodingCamera):
    def __init__(self, clock: Clock, mode: str) -> None:
        super().__init__(0, mode)
        self.clock = clock

    def capture_request(self) -> Any:
        self.clock.now = round(self.clock.now + 0.2, 6)
        return super().capture_request()


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """make(mode, fallback) → (recorder, camera, source), wired as agent.runtime wires a hardware choice."""
    fake_picamera2.install(monkeypatch)
    clock = Clock()
    # Picamera2Encoder stamps access units with time.monotonic() on arrival: here, camera time.
    monkeypatch.setattr("agent.clips.encoder.time", types.SimpleNamespace(monotonic=clock))
    made: list[Recorder] = []

    def make(mode: str, fallback: Any) -> tuple[Recorder, TickingCamera, PicameraSource]:
        hw = Picamera2Encoder(*CAMERA, 5.0, 4.0, 1, [QUARTER])
        rec = Recorder(
            ClipsConfig(width=CLIP[0], height=CLIP[1], fps=5.0),
            tmp_path,
            3,
            masks=[QUARTER],
            wall_ms=lambda: EPOCH_MS,
            make_encoder=lambda _w, _h, _f: hw,
            encoder_kind="hardware",
            encoder_reason="fake Pi 4: hardware encoder /dev/video11",
            fallback=fallback,
        )
        rec.start()
        made.append(rec)
        cam = TickingCamera(clock, mode)
        src = PicameraSource(size=CAMERA, fps=5.0, camera_factory=lambda _n: cam, clock=clock)
        src.on_start, src.on_stop = rec.camera_started, rec.camera_stopping
        return rec, cam, src

    yield make
    for rec in made:
        rec.stop()


def visit(start: float, end: float) -> dict[float, list[Any]]:
    return {start + 1: [emitted(7, "start", start)], end + 1: [emitted(7, "end", end)]}


def luma_means(frame: Any) -> tuple[float, float]:
    """(mean Y in the masked top-left quarter, mean Y elsewhere) of a decoded frame."""
    y = frame.to_ndarray(format="gray").astype(float)
    h, w = y.shape
    inside = np.zeros(y.shape, bool)
    inside[: h // 2, : w // 2] = True
    return float(y[inside].mean()), float(y[~inside].mean())


def test_auto_records_with_libx264_when_the_hardware_encoder_will_not_start(
    rig: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rec, cam, src = rig("busy", PyAvEncoder)
    with caplog.at_level(logging.WARNING, "agent.clips.recorder"):
        n = feed(rec, src, visit(6.0, 10.0), limit=100)
    rec.stop(close=False)
    assert n == 100 and cam.started == 0 and cam.pre_callback is None  # the mask callback came off again
    why = f"hardware encoder failed: OSError: {BUSY}; using software"
    assert rec.encoder_kind == "software" and rec.encoder_reason == why
    assert any(why in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)
    stats = rec.stats()
    assert stats["encoder"] == "software" and stats["fallbacks"] == 1 and stats["error"] is None
    assert (stats["width"], stats["height"]) == CLIP and stats["frames"] == 100
    assert rec.clips_cut == 1 and rec.store.count == 1 and rec.store.bytes > 0  # health's cl / clb grow
    frames, duration, _profile = decode(tmp_path / "clips" / "7.mp4")
    # pre_s 5 before 6.0 to post_s 5 after 10.0, in whole 4 s segments: [0, 16) s at 5 fps.
    assert len(frames) == 80 and 15.5 <= duration <= 16.5
    assert frames[0].key_frame and (frames[0].width, frames[0].height) == CLIP
    masked, rest = luma_means(frames[40])
    assert masked < 20 < rest  # the recorder blacks the masks out now: the camera no longer does
    rec.store.close()


def test_auto_switches_to_libx264_when_the_running_hardware_encoder_goes_silent(rig: Any, tmp_path: Path) -> None:
    rec, cam, src = rig("silent", PyAvEncoder)
    feed(rec, src, visit(13.0, 16.0), limit=150)
    rec.stop(close=False)
    assert cam.started == 1 and cam.stopped == 1 and cam.running is None  # the dead encoder is stopped
    assert rec.encoder_kind == "software" and rec.encoder_reason.startswith("hardware encoder failed: no H.264")
    assert rec.encoder_reason.endswith("; using software") and rec.fallbacks == 1
    frames, duration, _profile = decode(tmp_path / "clips" / "7.mp4")
    # Silence from 0.0 s is a failure at 10.0 s; libx264 from 10.2 s on, in 4 s segments, to past 21 s.
    assert len(frames) == 60 and 11.5 <= duration <= 12.5
    assert all((f.width, f.height) == CLIP for f in frames) and frames[0].key_frame
    assert recorder_mod.STALL_S == 10.0
    rec.store.close()


def test_hardware_mode_does_not_fall_back_and_says_why_naming_clips_encoder(rig: Any, tmp_path: Path) -> None:
    rec, cam, src = rig("busy", None)
    n = feed(rec, src, visit(6.0, 10.0), limit=100)
    assert n == 100 and cam.started == 0  # the camera, and so detection, goes on: only the clips stop
    rec.stop(close=False)
    err = rec.encoder_error
    assert err == (
        f"clips.encoder: hardware, but the hardware encoder failed: OSError: {BUSY}; "
        "set clips.encoder to auto or software"
    )
    assert rec.stats()["error"] == err[:200] and rec.encoder_kind == "hardware" and rec.fallbacks == 0
    assert rec.clips_cut == 0 and not (tmp_path / "clips" / "7.mp4").exists() and rec.frames == 0
    rec.store.close()


def test_auto_with_a_working_hardware_encoder_uses_it(rig: Any, tmp_path: Path) -> None:
    rec, cam, src = rig("works", PyAvEncoder)
    feed(rec, src, visit(6.0, 10.0), limit=100)
    rec.stop(close=False)
    assert cam.started == 1 and cam.stopped == 1  # attached at open, detached at close
    assert rec.encoder_kind == "hardware" and rec.fallbacks == 0 and rec.encoder_error is None
    frames, duration, _profile = decode(tmp_path / "clips" / "7.mp4")
    assert len(frames) == 80 and 15.5 <= duration <= 16.5
    assert all((f.width, f.height) == CAMERA for f in frames)  # the camera's size: the hardware made it
    rec.store.close()


def test_the_agent_wires_the_fallback_for_auto_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from agent.config import load
    from agent.runtime import Agent
    from tests.support.agent_yaml import write_config
    from tests.support.tls import make_pki

    fake_picamera2.install(monkeypatch)
    monkeypatch.setattr("agent.clips.select.hardware_h264", lambda root=None: (True, "fake Pi 4: /dev/video11"))
    p = make_pki(tmp_path / "pki")
    camera = {"source": "picamera2", "width": 320, "height": 180, "fps": 5}
    for mode in ("auto", "hardware"):
        (tmp_path / mode).mkdir()
        cfg = load(write_config(tmp_path / mode, p, 8883, camera=camera, clips={"encoder": mode}))
        agent = Agent(cfg, threading.Event())
        rec = agent.clips
        try:
            assert rec is not None and rec.encoder_kind == "hardware"
            source = agent.capture._make_source()
            assert source.on_start == rec.camera_started and source.on_stop == rec.camera_stopping
            rec.start()
            rec.camera_started(EncodingCamera(mode="busy"))  # what PicameraSource.open calls
            assert rec.drain()
            if mode == "auto":
                assert rec.encoder_kind == "software" and rec.encoder_reason.endswith(f"{BUSY}; using software")
                assert agent._error() is None
            else:
                assert rec.encoder_kind == "hardware"
                assert (agent._error() or "").startswith("clips.encoder: hardware, but the hardware encoder failed")
        finally:
            rec.stop()
            agent.outbox.close()

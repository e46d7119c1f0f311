"""A fake picamera2 whose hardware H.264 encoder works, goes silent, or will not start (no Pi, no V4L2 codec here).

``install`` puts modules ``picamera2``, ``picamera2.encoders`` and ``picamera2.outputs`` in ``sys.modules``
(what ``Picamera2Encoder.attach`` imports). ``EncodingCamera`` is tests.support.fake_camera's FakeCamera with
``start_encoder`` / ``stop_encoder``: a working encoder is libx264 standing in for the bcm2835 codec, fed
each main frame the camera captures (every ``frame_skip_count``-th, a keyframe each ``iperiod`` encoded), as
picamera2 feeds its encoders before the application sees the request.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from agent.clips.encoder import PyAvEncoder, to_yuv
from tests.support.fake_camera import FakeCamera, FakeRequest

BUSY = "[Errno 16] Device or resource busy: '/dev/video11'"  # what V4L2Encoder's open gives when it is taken


class FakeH264Encoder:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.frame_skip_count = 1


class FakeOutput:
    pass


class FakeMappedArray:
    def __init__(self, request: Any, stream: str) -> None:
        self.array = request.make_array(stream)

    def __enter__(self) -> FakeMappedArray:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = types.ModuleType("picamera2")
    pkg.MappedArray = FakeMappedArray  # type: ignore[attr-defined]
    encoders = types.ModuleType("picamera2.encoders")
    encoders.H264Encoder = FakeH264Encoder  # type: ignore[attr-defined]
    outputs = types.ModuleType("picamera2.outputs")
    outputs.Output = FakeOutput  # type: ignore[attr-defined]
    for name, mod in (("picamera2", pkg), ("picamera2.encoders", encoders), ("picamera2.outputs", outputs)):
        monkeypatch.setitem(sys.modules, name, mod)


class EncodingCamera(FakeCamera):
    """``mode``: "works" (libx264 output for each frame), "silent" (starts, never outputs), "busy" (raises)."""

    def __init__(self, num: int = 0, mode: str = "works") -> None:
        super().__init__(num)
        self.mode = mode
        self.pre_callback: Any = None
        self.running: tuple[FakeH264Encoder, Any] | None = None
        self.started = self.stopped = 0
        self._x264: PyAvEncoder | None = None
        self._n = 0

    def start_encoder(self, encoder: FakeH264Encoder, output: Any, name: str = "main") -> None:
        assert name == "main"
        if self.mode == "busy":
            raise OSError(BUSY)
        self.running, self.started, self._n = (encoder, output), self.started + 1, 0
        w, h = self.config["main"]["size"]
        self._x264 = PyAvEncoder(w, h, 5.0)

    def stop_encoder(self, encoder: FakeH264Encoder) -> None:
        assert self.running is not None and self.running[0] is encoder, "stopped an encoder that is not running"
        self.running, self._x264 = None, None
        self.stopped += 1

    def capture_request(self) -> FakeRequest:
        req = super().capture_request()
        if self.pre_callback is not None:
            self.pre_callback(req)
        if self.running is not None and self.mode == "works" and self._x264 is not None:
            encoder, output = self.running
            if self._n % encoder.frame_skip_count == 0:
                count = self._n // encoder.frame_skip_count
                w, h = self.config["main"]["size"]
                yuv = to_yuv(req.make_array("main"), w, h)
                for unit in self._x264.encode(yuv, count / 5.0, count % encoder.kwargs["iperiod"] == 0):
                    output.outputframe(unit.data, keyframe=unit.key)
            self._n += 1
        return req

"""The Raspberry Pi camera via picamera2: a main stream and a low-res YUV stream.

The ISP scales every frame twice for free: ``main`` (e.g. 1280x720 RGB) for
detection and snapshots, and ``lores`` (e.g. 320x180 YUV420) whose Y plane is
the motion luma with no conversion at all. Each read takes one completed
request and keeps it until the next read, so ``frame.rgb`` can still copy the
main stream of *that same* frame if the pipeline decides to run detection —
and skips the 2.7 MB copy when it does not.

picamera2 comes from apt (python3-picamera2) on Raspberry Pi OS and is not a
pip dependency; it is imported only when the camera is opened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from agent.vision.frame import Frame, SourceBase


class CameraUnavailable(RuntimeError):
    pass


def _import_picamera2() -> Any:
    try:
        from picamera2 import Picamera2
    except ImportError as exc:
        raise CameraUnavailable(
            "the Pi camera needs picamera2, which is not importable here: on Raspberry Pi OS run "
            "`sudo apt install python3-picamera2` and make the agent venv with --system-site-packages; "
            "elsewhere replay a file or a synthetic:<scene> source instead"
        ) from exc
    return Picamera2


def yuv420_planes(buf: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y, U, V planes of a picamera2 YUV420 array.

    picamera2 returns YUV420 as a (height * 3/2, stride) uint8 array: ``height``
    rows of Y, then U and V at half size each, every chroma row packed at
    half the stride. ``stride`` may exceed ``width`` (row padding).
    """
    stride = buf.shape[1]
    y = buf[:height, :width]
    flat = buf.reshape(-1)
    cw, ch, cstride = width // 2, height // 2, stride // 2
    u_start = stride * height
    v_start = u_start + cstride * ch
    u = flat[u_start:v_start].reshape(ch, cstride)[:, :cw]
    v = flat[v_start : v_start + cstride * ch].reshape(ch, cstride)[:, :cw]
    return y, u, v


def chroma_of_uv(u: np.ndarray, v: np.ndarray, step: int = 4) -> float:
    """Mean distance of U and V from neutral grey (128): ~0 once IR is on."""
    us = u[::step, ::step].astype(np.int16)
    vs = v[::step, ::step].astype(np.int16)
    return float(np.abs(us - 128).mean() + np.abs(vs - 128).mean())


class PicameraSource(SourceBase):
    """A FrameSource over picamera2. ``ts`` is ``time.monotonic()`` at capture."""

    def __init__(
        self,
        size: tuple[int, int] = (1280, 720),
        lores: tuple[int, int] = (320, 180),
        fps: float = 10.0,
        camera_num: int = 0,
        main_format: str = "BGR888",
        camera_factory: Callable[[int], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if main_format not in ("BGR888", "RGB888"):
            raise ValueError(f"main_format must be BGR888 or RGB888, got {main_format!r}")
        self._size = size
        self._lores = lores
        self._fps = float(fps)
        self._camera_num = camera_num
        # picamera2 names formats by DRM fourcc: "BGR888" arrays are R,G,B in
        # numpy order and "RGB888" arrays are B,G,R, which we flip on use.
        self._main_format = main_format
        self._factory = camera_factory
        self._clock = clock
        self._camera: Any = None
        self._request: Any = None
        self._index = 0
        # Called with the picamera2 object once it is started / before it stops: the
        # hardware clip encoder (agent.clips.encoder.Picamera2Encoder) attaches here.
        self.on_start: Callable[[Any], None] | None = None
        self.on_stop: Callable[[Any], None] | None = None

    def open(self) -> None:
        factory = self._factory or _import_picamera2()
        camera = factory(self._camera_num)
        config = camera.create_video_configuration(
            main={"size": self._size, "format": self._main_format},
            lores={"size": self._lores, "format": "YUV420"},
            controls={"FrameRate": self._fps},
            buffer_count=4,  # one held by the pipeline, the rest keep the sensor streaming
        )
        camera.configure(config)
        camera.start()
        self._camera = camera
        self._index = 0
        if self.on_start is not None:
            self.on_start(camera)

    def read(self) -> Frame | None:
        if self._camera is None:
            raise RuntimeError("open() the source before read()")
        self._release()
        request = self._camera.capture_request()
        ts = self._clock()
        self._request = request
        lores_w, lores_h = self._lores
        y, u, v = yuv420_planes(request.make_array("lores"), lores_w, lores_h)
        index = self._index
        self._index += 1
        return Frame(
            ts,
            index,
            y,
            self._size,
            load_rgb=lambda: self._main_rgb(request),
            chroma=chroma_of_uv(u, v),
        )

    def _main_rgb(self, request: Any) -> np.ndarray:
        if request is not self._request:
            raise RuntimeError("frame.rgb is only available until the next read()")
        main = request.make_array("main")
        width, height = self._size
        main = main[:height, :width, :3]
        return np.ascontiguousarray(main[:, :, ::-1] if self._main_format == "RGB888" else main)

    def _release(self) -> None:
        if self._request is not None:
            self._request.release()
            self._request = None

    def close(self) -> None:
        self._release()
        if self._camera is not None:
            try:
                if self.on_stop is not None:
                    self.on_stop(self._camera)
                self._camera.stop()
            finally:
                self._camera.close()
                self._camera = None

"""Video files as a frame source (replay, commissioning, the footprint bench).

Decoded with PyAV, which the agent already carries for its clips (libx264 and
the MP4 remux), so replaying a file adds no second FFmpeg to the process:
OpenCV's wheel brought its own, about 20 MB of resident libraries in a
10-minute ``xl-agent run`` (README, "Where the agent's memory goes"). OpenCV is
the fallback where PyAV is not installed (32-bit ARM, where pip has no wheel).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agent.vision.frame import Frame, SourceBase, chroma_of, luma_from_rgb, motion_step


class _Decoder(Protocol):
    fps: float  # what the file says, 0 when it says nothing
    size: tuple[int, int]

    def read(self) -> tuple[np.ndarray, float | None] | None:
        """The next frame as RGB and its time in seconds (None when the file gives none); None at the end."""
        ...

    def close(self) -> None: ...


class _PyAvDecoder:
    def __init__(self, path: Path, av: Any) -> None:
        try:
            self._container = av.open(str(path))
        except (av.error.FFmpegError, ValueError) as exc:
            raise RuntimeError(f"cannot open {path} as a video: {exc}") from None
        try:
            self._setup(path, av)
        except BaseException:
            self._container.close()
            raise

    def _setup(self, path: Path, av: Any) -> None:
        streams = self._container.streams.video
        if not streams:
            raise RuntimeError(f"cannot open {path} as a video: it has no video stream")
        stream = streams[0]
        # One decoding thread: frame threads each hold reference frames, and a replayed
        # file is never the bottleneck of a pipeline that runs at the camera's rate.
        stream.codec_context.thread_count = 1
        # Bit-exact decoding and colour conversion: FFmpeg's faster SIMD IDCTs and YUV-to-RGB paths
        # round differently on x86 and on a Pi's NEON, so the same file would give another event
        # there (tests/pi found one). About 1.7 ms more per 720x528 frame here.
        stream.codec_context.options = {"flags": "+bitexact", "idct": "simple"}
        rate = stream.average_rate or getattr(stream, "guessed_rate", None)
        self.fps = float(rate) if rate else 0.0
        # Times from the start of the stream, as OpenCV gave them: a camera's or a DVR's MPEG-TS
        # starts at any pts. AVI has no presentation times, only one frame per chunk at a fixed
        # rate, and FFmpeg's guesses come out of order with packed B-frames (XviD: 1, 2, 3, 5, 4,
        # ...), so there the source counts frames instead (None).
        self._start = stream.start_time or 0
        self._time_base = stream.time_base
        self._counted = "avi" in self._container.format.name.split(",")
        self.size = (int(stream.codec_context.width), int(stream.codec_context.height))
        self._frames: Iterator[Any] = self._container.decode(stream)
        self._error = av.error.FFmpegError
        # PyAV < 18 (apt's python3-av, which a 32-bit Pi's venv sees) has no ACCURATE_RND or
        # BITEXACT: it converts with its defaults there, which a replay tolerates.
        flags = av.video.reformatter.Interpolation
        exact = [getattr(flags, name, None) for name in ("ACCURATE_RND", "BITEXACT")]
        self._rgb: Any = None if None in exact else flags.BILINEAR | exact[0] | exact[1]

    def read(self) -> tuple[np.ndarray, float | None] | None:
        try:
            frame = next(self._frames)
        except StopIteration:
            return None
        except self._error:
            return None  # a damaged tail ends the file, as it does for a camera that stops
        rgb: np.ndarray = (
            frame.to_ndarray(format="rgb24")
            if self._rgb is None
            else frame.to_ndarray(format="rgb24", interpolation=self._rgb)
        )
        if self._counted or frame.pts is None or self._time_base is None:
            return rgb, None
        return rgb, float((frame.pts - self._start) * self._time_base)

    def close(self) -> None:
        self._container.close()


class _Cv2Decoder:
    def __init__(self, path: Path, cv2: Any) -> None:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise RuntimeError(f"OpenCV cannot open {path} as a video")
        self._cap, self._pos_msec = cap, cv2.CAP_PROP_POS_MSEC
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def read(self) -> tuple[np.ndarray, float | None] | None:
        ok, bgr = self._cap.read()
        if not ok or bgr is None:
            return None
        if bgr.ndim == 2:
            bgr = np.repeat(bgr[:, :, None], 3, axis=2)
        # After reading frame i, OpenCV reports frame i's own time (0 for every frame on some backends).
        pos = float(self._cap.get(self._pos_msec) or 0.0) / 1000.0
        return np.ascontiguousarray(bgr[:, :, ::-1]), pos

    def close(self) -> None:
        self._cap.release()


def _open_decoder(path: Path, backend: str) -> _Decoder:
    if backend in ("auto", "av"):
        try:
            import av
        except ImportError:
            if backend == "av":
                raise RuntimeError("reading video files with backend 'av' needs PyAV (pip install av)") from None
        else:
            return _PyAvDecoder(path, av)
    try:
        import cv2
    except ImportError as exc:
        raise RuntimeError(
            "reading video files needs PyAV (installed with the agent on 64-bit systems) or OpenCV: "
            "pip install av, or 'xueliang-edge[replay]'"
        ) from exc
    return _Cv2Decoder(path, cv2)


class VideoFileSource(SourceBase):
    """A video file; timestamps come from the file.

    ``ts`` is the frame's time in the file when it moves forward, else the
    previous time plus 1/fps (some containers give no time, or the same one,
    for every frame). Passing ``fps`` overrides both: ``ts = index / fps``.
    ``backend`` is ``auto`` (PyAV, else OpenCV), ``av`` or ``cv2``.
    """

    def __init__(self, path: str | Path, fps: float | None = None, backend: str = "auto") -> None:
        if backend not in ("auto", "av", "cv2"):
            raise ValueError(f"backend must be auto, av or cv2, got {backend!r}")
        self.path = Path(path)
        self.backend = backend
        self._fps_override = fps
        self._decoder: _Decoder | None = None
        self._fps = fps or 0.0
        self._size = (0, 0)
        self._index = 0
        self._last_ts = -math.inf

    def open(self) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"video file not found: {self.path}")
        self.close()
        self._decoder = _open_decoder(self.path, self.backend)
        fps = self._decoder.fps
        self._fps = self._fps_override or (fps if 0.5 <= fps <= 240 else 10.0)
        self._size = self._decoder.size
        self._index = 0
        self._last_ts = -math.inf

    def read(self) -> Frame | None:
        if self._decoder is None:
            raise RuntimeError("open() the source before read()")
        got = self._decoder.read()
        if got is None:
            return None
        rgb, pos = got
        index = self._index
        self._index += 1
        if self._fps_override is not None:
            ts = index / self._fps
        elif pos is not None and (pos > self._last_ts or (index == 0 and pos >= 0.0)):
            ts = pos
        else:
            ts = self._last_ts + 1.0 / self._fps if index else 0.0
        self._last_ts = ts
        h, w = rgb.shape[:2]
        self._size = (w, h)
        step = motion_step(w)
        return Frame(
            ts,
            index,
            luma_from_rgb(rgb, step),
            (w, h),
            load_rgb=lambda: rgb,
            chroma=chroma_of(rgb[::step, ::step]),
        )

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None

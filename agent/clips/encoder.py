"""The ClipEncoder port: frames in, H.264 Annex B access units out, a keyframe when asked.

Two implementations (docs/clips.md, "Encoding"):

- ``PyAvEncoder``: FFmpeg's libx264 through PyAV, for files, synthetic scenes
  and the Pi 5, which has no hardware H.264 encoder. ``veryfast`` +
  ``zerolatency`` on one thread means no B-frames and no look-ahead, so every
  frame given is one access unit out at once, and the ring can cut exactly
  where it asks for a keyframe. Constrained Baseline plays in every browser.
- ``Picamera2Encoder``: the Pi 3/4/Zero 2 W hardware encoder, fed by the
  camera itself (not by the frames we see), masks blacked out in a picamera2
  ``pre_callback``; chosen by agent.clips.select. Tested here against fakes of
  picamera2 only: a real encoder needs a Pi.

Both emit SPS/PPS in-band before each IDR frame, so every segment that starts
with a keyframe decodes on its own.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import numpy as np

# A quality target with a ceiling: a still yard costs a few KB a second, while
# a windy tree or sensor noise at night cannot blow a 10 s clip past ~700 KB.
# veryfast at CRF 29, one thread, against the former ultrafast at CRF 28 on
# sliced threads (with the ring's 4 s segments against 2 s): 2.2-2.5x fewer
# bytes, 99 % of the persons the detector found still found, 1.2-1.3x the CPU
# per frame. Main (CABAC) would save another 4-10 %, at 1.1-1.5x; Baseline is
# kept for every decoder (bench/clip_quality.py; README, clipq_*).
CRF = 29
MAX_KBIT_S = 500

X264_OPTIONS: dict[str, str] = {
    "preset": "veryfast",
    "tune": "zerolatency",  # no B-frames, no look-ahead: each frame given is one access unit out at once
    "profile": "baseline",  # Constrained Baseline (no CABAC, no B-frames): every browser and decoder plays it
    "crf": str(CRF),
    "maxrate": f"{MAX_KBIT_S}k",
    "bufsize": f"{2 * MAX_KBIT_S}k",
    "threads": "1",  # one slice a frame: slices cost bytes and would make them depend on the core count
    "forced-idr": "1",  # a forced I frame is an IDR: decoding may start there
    "sc_threshold": "0",  # keyframes only where the ring asks, never at scene cuts (see gop_size)
}


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One H.264 access unit (Annex B) and the source time of its frame."""

    data: bytes
    ts: float  # seconds, the Frame.ts it was encoded from
    key: bool  # an IDR frame with SPS/PPS in front: a segment may start here


class ClipEncoder(Protocol):
    width: int
    height: int

    def encode(self, yuv: Any, ts: float, keyframe: bool) -> list[EncodedFrame]:
        """Encode one frame (an ``av.VideoFrame`` in yuv420p at width x height); ``keyframe`` forces an IDR.

        Returns what the encoder has finished, which may include earlier frames."""
        ...

    def flush(self) -> list[EncodedFrame]: ...

    def close(self) -> None: ...


class PyAvEncoder:
    """libx264 via PyAV (FFmpeg), one access unit per frame given."""

    def __init__(self, width: int, height: int, fps: float, options: Mapping[str, str] | None = None) -> None:
        """``options`` override or add to ``X264_OPTIONS`` (an empty value drops one): bench/clip_quality.py's grid."""
        import av

        self.width, self.height = width & ~1, height & ~1  # 4:2:0 needs even sides
        ctx: Any = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = self.width, self.height, "yuv420p"
        ctx.time_base = Fraction(1, 1000)  # pts in ms of source time
        ctx.framerate = Fraction(fps).limit_denominator(1000)
        ctx.gop_size = 100_000  # keyframes only where the ring asks (forced IDR), never by count ...
        ctx.options = {k: v for k, v in (X264_OPTIONS | dict(options or {})).items() if v}
        ctx.open()
        self._ctx = ctx
        self._ts: dict[int, float] = {}  # pts → source ts, for the (rare) delayed packet
        self._last_pts = -1
        self._key_type = av.video.frame.PictureType.I
        self._none_type = av.video.frame.PictureType.NONE

    def encode(self, yuv: Any, ts: float, keyframe: bool) -> list[EncodedFrame]:
        pts = max(round(ts * 1000), self._last_pts + 1)  # strictly increasing, whatever the source says
        self._last_pts = pts
        yuv.pts = pts
        yuv.pict_type = self._key_type if keyframe else self._none_type
        self._ts[pts] = ts
        return self._collect(self._ctx.encode(yuv))

    def flush(self) -> list[EncodedFrame]:
        try:
            return self._collect(self._ctx.encode(None))
        except Exception:  # already flushed (EOF): nothing more to give
            return []

    def _collect(self, packets: Any) -> list[EncodedFrame]:
        out = []
        for p in packets:
            ts = self._ts.pop(int(p.pts), float(p.pts) / 1000) if p.pts is not None else 0.0
            out.append(EncodedFrame(bytes(p), ts, bool(p.is_keyframe)))
        return out

    def close(self) -> None:
        self._ctx = None


class Picamera2Encoder:
    """picamera2's hardware ``H264Encoder`` on the camera's main stream (Pi 3/4/Zero 2 W).

    The camera feeds the encoder directly (``self_fed``): the recorder gives it
    no frames, and ``encode`` hands over the access units that arrived since
    the last call. ``attach`` is called each time the camera opens
    (agent.vision.camera's ``on_start``), ``detach`` before it stops. It
    encodes the main stream at the camera's size (not clips.width x height:
    the ISP gives two scaled outputs, main and lores, and both are taken), at
    the camera's rate divided by ``frame_skip`` (picamera2's
    ``frame_skip_count``), so near clips.fps. A keyframe comes every
    ``iperiod`` encoded frames (one segment), not on request: the ring starts
    a segment at each one. Times are ``time.monotonic()`` on arrival, the
    clock agent.vision.camera stamps frames with.

    Masks: ``mask_main`` is installed as ``picam2.pre_callback``, which
    picamera2 runs on every completed request before any application job
    (``capture_request``) and before the encoders see it, so the masked pixels
    of the main stream are black in the clip, and also in what detection and
    snapshots get from main (snapshots black them out anyway; motion reads
    lores, which is not touched and ignores the masks itself). ``post_callback``
    would leave detection the unmasked image but races our held request.
    """

    self_fed = True

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        segment_s: float,
        frame_skip: int = 1,
        masks: Any = (),
        mapped_array: Any = None,
    ) -> None:
        from agent.vision.masks import MaskCache

        self.width, self.height = width, height
        self.frame_skip = max(1, frame_skip)
        self.iperiod = max(1, round(fps * segment_s))
        self.masks = MaskCache(list(masks))
        self._mapped_array = mapped_array  # picamera2.MappedArray (a fake in tests)
        self._lock = threading.Lock()
        self._pending: collections.deque[EncodedFrame] = collections.deque(maxlen=int(fps * 60) + 1)
        self._encoder: Any = None
        self._picam2: Any = None

    def mask_main(self, request: Any) -> None:
        """picamera2 pre_callback: black out the mask polygons in the request's main stream, in place."""
        if self._mapped_array is None:
            from picamera2 import MappedArray

            self._mapped_array = MappedArray
        with self._mapped_array(request, "main") as m:
            arr = m.array
            mask = self.masks.at(arr.shape[1], arr.shape[0])
            if mask is not None:
                arr[mask] = 0

    def set_masks(self, masks: Any) -> None:
        """New masks (a config push): the camera's callback follows at once, installed or taken off."""
        from agent.vision.masks import MaskCache

        self.masks = MaskCache(list(masks))  # one reference swap: the camera thread reads either whole
        if self._picam2 is not None:
            self._picam2.pre_callback = self.mask_main if self.masks.polygons else None

    def attach(self, picam2: Any) -> None:
        from picamera2.encoders import H264Encoder
        from picamera2.outputs import Output

        pending, lock = self._pending, self._lock

        class _ToRing(Output):  # type: ignore[misc]  # picamera2 is untyped
            def outputframe(
                self,
                frame: bytes,
                keyframe: bool = True,
                timestamp: Any = None,
                packet: Any = None,
                audio: bool = False,
            ) -> None:
                if not audio:
                    with lock:
                        pending.append(EncodedFrame(bytes(frame), time.monotonic(), keyframe))

        if self.masks.polygons:
            picam2.pre_callback = self.mask_main
        # repeat=True puts SPS/PPS before every IDR, as libx264 does here.
        encoder = H264Encoder(
            bitrate=MAX_KBIT_S * 1000, repeat=True, iperiod=self.iperiod, profile="constrained baseline"
        )
        encoder.frame_skip_count = self.frame_skip  # older picamera2 ignores it: every frame is encoded
        try:
            picam2.start_encoder(encoder, _ToRing(), name="main")
        except BaseException:
            # /dev/video11 busy or broken: no encoder runs, so no callback either (it would only cost
            # time per frame, and black out detection's main stream for a clip nobody records).
            picam2.pre_callback = None
            raise
        self._encoder, self._picam2 = encoder, picam2

    def detach(self, picam2: Any) -> None:
        if self._encoder is not None and self._picam2 is picam2:
            picam2.stop_encoder(self._encoder)
        self._encoder = self._picam2 = None
        picam2.pre_callback = None

    def encode(self, yuv: Any, ts: float, keyframe: bool) -> list[EncodedFrame]:
        with self._lock:
            out = list(self._pending)
            self._pending.clear()
        return out

    def flush(self) -> list[EncodedFrame]:
        return self.encode(None, 0.0, False)

    def close(self) -> None:
        if self._picam2 is not None:
            self.detach(self._picam2)


def to_yuv(rgb: np.ndarray, width: int, height: int) -> Any:
    """An RGB image scaled (swscale, area) and converted to the encoder's yuv420p frame."""
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")

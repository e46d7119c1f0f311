"""The recorder: frames from the capture thread → encoder → ring, and a clip per visit.

The capture thread only hands over (``offer``) every frame due at
``clips.fps``: a strided copy of the RGB image the pipeline already has and
the source time. Scaling, masking, encoding, the ring and the remux run on
this module's own thread, behind a bounded queue, so detection never waits
for the encoder: when the encoder falls behind, frames are dropped (and
counted in ``dropped``) rather than queued without end.

Visits come from the events the pipeline emits (``on_event``): a visit's
clip runs from ``pre_s`` before its start to ``post_s`` after its end, and is
cut once the ring holds a complete segment past that. When the stream ends
(a file replayed from the start, the camera reopened, the agent stopping) the
open clips are cut at once with what there is.

The hardware encoder can fail after it was chosen (``/dev/video11`` busy,
picamera2's ``start_encoder`` raising, or no H.264 coming out of it): in
``clips.encoder: auto`` the recorder then switches to libx264
(``fallback``), so the device keeps recording; in ``hardware`` it stops
recording and says why, naming ``clips.encoder`` (docs/clips.md).
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.clips.cut import remux
from agent.clips.encoder import ClipEncoder, PyAvEncoder, to_yuv
from agent.clips.ring import Ring
from agent.clips.store import Clip, ClipStore
from agent.config import ClipsConfig
from agent.vision.masks import Polygon, rasterize

log = logging.getLogger(__name__)

QUEUE_S = 2.0  # seconds of frames the queue holds before it drops
# Camera frames this long with no access unit from a self-fed encoder: it has died. The hardware
# encoder gives one per encoded frame, so even at 1 fps and frame skipping this is many missed.
STALL_S = 10.0
EncoderFactory = Callable[[int, int, float], ClipEncoder]


def crashpoint(name: str) -> None:
    """The crash tests set XL_CLIPS_CRASH_AT=<name>: that point SIGKILLs the process, as a power cut would."""
    if os.environ.get("XL_CLIPS_CRASH_AT") == name:
        sys.stderr.write(f"crashpoint {name}\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class _Visit:
    event_id: int
    kind: str
    start_ts: float
    keep: bool
    end_ts: float | None = None
    detections: list[tuple[int, ...]] = field(default_factory=list)


class Recorder:
    def __init__(
        self,
        cfg: ClipsConfig,
        state_dir: Path,
        boot: int,
        *,
        masks: Sequence[Polygon] = (),
        armed: Callable[[], bool] = lambda: False,
        wall_ms: Callable[[], int],
        make_encoder: EncoderFactory = PyAvEncoder,
        encoder_kind: str = "software",
        encoder_reason: str = "",
        fallback: EncoderFactory | None = None,
    ) -> None:
        """``fallback``: the encoder to switch to when a self-fed (hardware) one fails; None: fail instead."""
        self.cfg = cfg
        self.store = ClipStore(state_dir / "clips", cfg.max_bytes)
        self.ring = Ring(state_dir / "clips" / "ring", boot, cfg.ring_s)
        self._make_encoder = make_encoder
        self.encoder: ClipEncoder = make_encoder(cfg.width, cfg.height, cfg.fps)
        self.width, self.height = self.encoder.width, self.encoder.height
        # A self-fed encoder (picamera2's hardware one) gets its frames from the camera,
        # masked there (Picamera2Encoder.mask_main): the recorder only collects its output.
        self._self_fed = bool(getattr(self.encoder, "self_fed", False))
        self._masks = list(masks)  # kept: a fallback from the hardware encoder masks here instead
        self._mask = self._mask_for([] if self._self_fed else self._masks)
        self.encoder_kind = encoder_kind  # "software" (libx264) or "hardware" (picamera2), in the stats
        self.encoder_reason = encoder_reason
        self._fallback = fallback
        self.fallbacks = 0  # times the hardware encoder failed and libx264 took over
        self.encoder_error: str | None = None  # the hardware encoder failed and there is no fallback
        self._quiet_from: float | None = None  # ts of the first camera frame since the last access unit
        # Set on the camera's thread when attach fails: the frames after it are for libx264, which the
        # recorder's thread switches to before it gets to them (the failure is queued first).
        self._attach_failed = False
        self._armed = armed
        self._wall_ms = wall_ms
        self._period = 1.0 / cfg.fps
        self._next_ts = -1e18
        self._last_ts = -1e18
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._queued_frames = 0
        self._max_frames = max(2, round(cfg.fps * QUEUE_S))
        self._cond = threading.Condition()
        self._busy = False
        self._visits: dict[int, _Visit] = {}
        self._latest_ts: float | None = None
        self._thread: threading.Thread | None = None
        self.frames = 0  # encoded
        self.dropped = 0  # offered but the encoder was behind
        self.clips_cut = 0
        self.error: str | None = None

    # -- the capture thread ----------------------------------------------------

    def offer(self, frame: Any) -> bool:
        """A frame from the capture loop; True when it was taken (due at clips.fps and room in the queue)."""
        ts = float(frame.ts)
        if ts < self._last_ts:  # the source started again: its times did too
            self._next_ts = -1e18
        self._last_ts = ts
        if ts < self._next_ts - self._period * 0.25:  # a little early is on time: sources jitter
            return False
        self._next_ts = max(self._next_ts, ts) + self._period
        if self.encoder_error is not None:  # nothing to record with: take no work
            return False
        with self._cond:
            if self._queued_frames >= self._max_frames:
                self.dropped += 1
                return False
        if self._self_fed and not self._attach_failed:  # the camera feeds the encoder: only the time is needed
            self._put("frame", (ts, None, self._wall_ms()), frame=True)
            return True
        # The image may be a camera buffer that goes back at the next read: copy it,
        # strided down towards the clip size, which also makes the copy small.
        step = max(1, min(frame.width // self.width, frame.height // self.height))
        rgb = np.array(frame.rgb[::step, ::step], copy=True)
        self._put("frame", (ts, rgb, self._wall_ms()), frame=True)
        return True

    def on_event(self, emitted: Any) -> None:
        """An ``agent.vision.tracker.Emitted`` (or a panic's, see ``panic``): visits open and close here."""
        self._put("event", (emitted.event, float(emitted.ts)))

    def panic(self, event: Any) -> None:
        """A panic has no visit: its clip runs around the moment of the newest frame."""
        self._put("event", (event, None))

    def stream_ended(self) -> None:
        self._put("flush", None)

    # -- the camera's hooks (PicameraSource.on_start / on_stop), for a self-fed encoder -----------

    def camera_started(self, picam2: Any) -> None:
        """Attach the hardware encoder to the camera just opened; if it will not start, switch (or fail).

        Never raises: a clip encoder that cannot start must not keep the camera, and so detection, down."""
        attach = getattr(self.encoder, "attach", None)
        if not self._self_fed or self.encoder_error is not None or attach is None:
            return
        try:
            attach(picam2)
        except Exception as exc:
            # Handled on the recorder's thread, which owns the encoder and the ring.
            self._attach_failed = True
            self._put("failed", f"{type(exc).__name__}: {exc}"[:160])

    def camera_stopping(self, picam2: Any) -> None:
        detach = getattr(self.encoder, "detach", None)
        if self._self_fed and detach is not None:
            detach(picam2)

    def _put(self, kind: str, item: Any, frame: bool = False) -> None:
        with self._cond:
            self._queue.append((kind, item))
            self._queued_frames += frame
            self._cond.notify_all()

    # -- lifetime --------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="xl-clips", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0, close: bool = True) -> None:
        """Cut what is open and stop the thread (the queue is worked off first)."""
        self._put("stop", None)
        if self._thread is not None:
            self._thread.join(timeout)
        if close:
            self.store.close()

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything offered so far has been worked off (tests, the bench)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    # -- the recorder thread ---------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue))
                kind, item = self._queue.popleft()
                self._queued_frames -= kind == "frame"
                self._busy = True
            try:
                if kind == "frame":
                    self._encode(*item)
                elif kind == "event":
                    self._event(*item)
                elif kind == "failed":
                    self._hardware_failed(item)
                else:
                    self._flush(restart=kind == "flush")
            except Exception as exc:  # a full card, a broken segment: the next one may work
                self.error = f"clips: {type(exc).__name__}: {exc}"[:200]
                log.exception("clips")
                if kind == "frame":
                    self.ring.reset()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            if kind == "stop":
                return

    def stats(self) -> dict[str, Any]:
        """What the recorder did, and with which encoder (logged at start, for the bench and support)."""
        return {
            "encoder": self.encoder_kind,
            "encoder_reason": self.encoder_reason,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "dropped": self.dropped,
            "clips": self.clips_cut,
            "fallbacks": self.fallbacks,
            "error": self.error,
        }

    def set_masks(self, masks: Sequence[Polygon]) -> None:
        """New masks (a config push), for every frame encoded from now on; clips already in the
        ring keep the masks they were recorded with."""
        self._masks = list(masks)
        if self._self_fed:
            set_masks = getattr(self.encoder, "set_masks", None)
            if set_masks is not None:
                set_masks(self._masks)
        else:
            self._mask = self._mask_for(self._masks)

    def _mask_for(self, masks: list[Polygon]) -> np.ndarray | None:
        mask = rasterize(masks, self.width, self.height)
        return mask if mask.any() else None

    def _hardware_failed(self, why: str) -> None:
        """The self-fed encoder failed (``why``): libx264 from here on, or, without a fallback, no clips."""
        if not self._self_fed or self.encoder_error is not None:
            return  # already handled: one failure can be reported twice (attach, then the stall)
        try:
            self.encoder.close()  # stops it on the camera if it did start, and takes the mask callback off
        except Exception as exc:
            log.debug("clips: closing the failed encoder: %s", exc)
        # What the hardware gave is cut now: libx264's segments have another size, and a clip is one stream.
        self._cut_now()
        try:
            if self._fallback is None:
                raise RuntimeError("clips.encoder is hardware: no fallback")
            self.encoder = self._fallback(self.cfg.width, self.cfg.height, self.cfg.fps)
        except Exception as exc:  # no clips from here on, and health's error says why (agent.runtime)
            self.encoder_error = self.error = (
                f"clips.encoder: hardware, but the hardware encoder failed: {why}; "
                + ("set clips.encoder to auto or software" if self._fallback is None else f"libx264 too: {exc}")
            )[:300]
            log.error("%s", self.encoder_error)
            return
        self._make_encoder = self._fallback
        self.width, self.height = self.encoder.width, self.encoder.height
        self._self_fed = False
        self._mask = self._mask_for(self._masks)  # the camera no longer masks for us: the recorder does
        self.encoder_kind = "software"
        self.encoder_reason = f"hardware encoder failed: {why}; using software"
        self.fallbacks += 1
        log.warning("clips: %s", self.encoder_reason)

    def _encode(self, ts: float, rgb: np.ndarray | None, wall_ms: int) -> None:
        if self._self_fed:
            self._encode_self_fed(ts, wall_ms)
            return
        if rgb is None:
            return  # offered for the hardware encoder before libx264 replaced it: no image to encode
        if self._mask is not None:
            import av

            small = to_yuv(rgb, self.width, self.height).reformat(format="rgb24").to_ndarray()
            small[self._mask] = 0  # blacked out before the encoder ever sees it
            yuv = av.VideoFrame.from_ndarray(small, format="rgb24").reformat(format="yuv420p")
        else:
            yuv = to_yuv(rgb, self.width, self.height)
        seg = self.ring.open_segment
        key = seg is None or ts - seg.first >= self.cfg.segment_s - self._period / 2
        self._add(self.encoder.encode(yuv, ts, key), wall_ms)
        self.frames += 1
        self._latest_ts = ts

    def _encode_self_fed(self, ts: float, wall_ms: int) -> None:
        try:
            units = self.encoder.encode(None, ts, False)
        except Exception as exc:
            self._hardware_failed(f"{type(exc).__name__}: {exc}"[:160])
            return
        if units:
            self._quiet_from = None
        elif self._quiet_from is None:
            self._quiet_from = ts
        elif ts - self._quiet_from >= STALL_S:
            self._hardware_failed(f"no H.264 from it for {ts - self._quiet_from:.0f} s of camera frames")
            return
        self._add(units, wall_ms)
        self.frames += len(units)
        self._latest_ts = ts

    def _add(self, units: list[Any], wall_ms: int) -> None:
        for unit in units:
            if self.ring.add(unit, wall_ms) is not None:
                self._cut_due()

    def _event(self, event: Any, ts: float | None) -> None:
        t = ts if ts is not None else (self._latest_ts or 0.0)
        v = self._visits.get(event.event_id)
        armed_person = event.kind == "person" and self._armed()
        if v is None:
            v = _Visit(event.event_id, event.kind, t, keep=event.kind == "panic" or armed_person)
            self._visits[event.event_id] = v
        v.keep = v.keep or armed_person
        if event.bbox is not None:
            v.detections.append((event.time_ms, event.score, *event.bbox))
        if event.phase == "end" or event.kind == "panic":
            v.end_ts = t
        self._hold()
        self._cut_due()

    def _hold(self) -> None:
        starts = [v.start_ts for v in self._visits.values()]
        self.ring.hold = min(starts) - self.cfg.pre_s if starts else None

    def _cut_due(self, force: bool = False) -> None:
        until = self.ring.closed_until
        for v in list(self._visits.values()):
            if v.end_ts is None and not force:
                continue
            end = (v.end_ts if v.end_ts is not None else self._latest_ts or v.start_ts) + self.cfg.post_s
            if force or (until is not None and until >= end):
                del self._visits[v.event_id]
                self._cut(v, end)
        self._hold()

    def _cut(self, v: _Visit, end: float) -> None:
        segments = self.ring.covering(v.start_ts - self.cfg.pre_s, end)
        if not segments:
            log.info("clips: no video for event %d", v.event_id)
            return
        size, sha, frames = remux(segments, self.store.path_of(v.event_id), self.cfg.fps, crashpoint)
        crashpoint("after-remux")
        start_ms = segments[0].wall_ms
        end_ms = start_ms + round((segments[-1].last - segments[0].first) * 1000)
        clip = Clip(v.event_id, v.kind, start_ms, end_ms, size, sha, v.keep, False, tuple(v.detections))
        self.store.add(clip)
        self.clips_cut += 1
        log.info("clips: event %d: %d frames, %d bytes", v.event_id, frames, size)

    def _flush(self, restart: bool) -> None:
        if self.encoder_error is None:
            for unit in self.encoder.flush():
                self.ring.add(unit, self._wall_ms())
        self._cut_now()
        if self._self_fed:  # the camera re-attaches it when it opens again (Picamera2Encoder.attach)
            if not restart:
                self.encoder.close()
            return
        # libx264 takes no frames after a flush: a new stream gets a new encoder.
        self.encoder.close()
        if restart:
            self.encoder = self._make_encoder(self.cfg.width, self.cfg.height, self.cfg.fps)

    def _cut_now(self) -> None:
        """Every open clip cut with what the ring holds, and the ring emptied: the stream starts again."""
        self.ring.close_open()
        self._cut_due(force=True)
        self.ring.reset()
        self._latest_ts = None
        self._quiet_from = None

"""The capture loop: camera → vision pipeline → outbox, and the camera's health.

It runs on its own thread. A camera that fails to open or stops giving frames
is closed and reopened with exponential backoff (capped), while health reports
``cam=error``; the rest of the agent (link, buttons, alerts) keeps working.
A recorded or synthetic source that ends is replayed from the start, with a
fresh pipeline, since its timestamps start again at zero.

``heartbeat`` (monotonic) moves on every frame and every reopen attempt: the
systemd watchdog is petted only while it moves, so a capture stuck inside the
camera stack (the realistic hang) gets the agent restarted.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.clock import DeviceClock
from agent.config import CameraConfig
from agent.outbox_writer import OutboxWriter

log = logging.getLogger(__name__)

REOPEN_BASE_S = 1.0
REOPEN_CAP_S = 60.0

SourceFactory = Callable[[], Any]  # () -> agent.vision.frame.FrameSource
PipelineFactory = Callable[[], Any]  # () -> agent.vision.pipeline.VisionPipeline


def source_factory(cfg: CameraConfig) -> SourceFactory:
    """Build the configured FrameSource (not opened) via agent.vision.sources."""

    def build() -> Any:
        from agent.vision.sources import open_source

        if cfg.source.startswith("picamera2"):
            return open_source(
                cfg.source,
                fps=cfg.fps,
                size=(cfg.width, cfg.height),
                lores=(cfg.lores_width, cfg.lores_height),
            )
        if cfg.source.startswith("synthetic:"):
            explicit = cfg.source.partition("?")[2]
            extra = {} if "width=" in explicit else {"width": cfg.width, "height": cfg.height}
            return open_source(cfg.source, fps=None if "fps=" in explicit else cfg.fps, **extra)
        # A video file keeps its own timestamps; an image folder has none, so it takes camera.fps.
        return open_source(cfg.source, fps=None if Path(cfg.source).is_file() else cfg.fps)

    return build


class Capture:
    def __init__(
        self,
        make_source: SourceFactory,
        make_pipeline: PipelineFactory | None,
        writer: OutboxWriter,
        clock: DeviceClock,
        pace: bool,
    ) -> None:
        self._make_source = make_source
        self._make_pipeline = make_pipeline
        self.writer = writer
        self.clock = clock
        self.pace = pace  # sleep to the source's fps (files, synthetic); a camera paces itself
        self.state = "starting"
        self.error: str | None = None
        self.frames = 0
        self.events = 0
        self.reopens = 0
        self.heartbeat = time.monotonic()
        self.pipeline: Any = None
        self.clips: Any = None  # agent.clips.recorder.Recorder: takes frames and visits, encodes on its own thread
        self._recent: collections.deque[float] = collections.deque(maxlen=32)
        self._stop = threading.Event()
        self._restart = threading.Event()
        self._pir = threading.Event()
        self._snapshot_width: int | None = None
        self._snapshot_wanted = threading.Event()
        self._vision: Any = None  # a pushed VisionConfig for the pipeline, taken up between two frames
        self._vision_lock = threading.Lock()  # a push landing while the previous is taken up is not lost
        self._thread: threading.Thread | None = None

    # -- control from other threads ----------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="xl-capture", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def restart(self) -> str | None:
        self._restart.set()
        return None

    def pir(self) -> None:
        """The PIR fired: the next frame runs detection even without visible motion."""
        self._pir.set()

    def reconfigure(self, vision: Any) -> None:
        """A new VisionConfig (agent.config_push) for the running pipeline, applied before the next frame.

        On the capture thread, since the pipeline is not thread-safe; a pipeline built later
        (a restart, a replayed file) is built from the agent's current config anyway."""
        with self._vision_lock:
            self._vision = vision

    def request_snapshot(self, width: int | None) -> str | None:
        if self.state != "ok":
            return f"camera is {self.state}"
        self._snapshot_width = width
        self._snapshot_wanted.set()
        return None

    @property
    def fps(self) -> float | None:
        if len(self._recent) < 2:
            return None
        span = self._recent[-1] - self._recent[0]
        return (len(self._recent) - 1) / span if span > 0 else None

    # -- the capture thread ------------------------------------------------

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            source = None
            try:
                source = self._make_source()
                source.open()
                self.pipeline = self._make_pipeline() if self._make_pipeline is not None else None
                self.state, self.error = "ok", None
                if self._stream(source):
                    failures = 0  # the stream simply ended (a file or a scene): replay it
                    continue
            except Exception as exc:  # a camera stack raises anything; health shows it
                self.state, self.error = "error", f"camera: {type(exc).__name__}: {exc}"[:200]
                log.warning("%s", self.error)
                failures += 1
            finally:
                self._finish()
                if source is not None:
                    try:
                        source.close()
                    except Exception as exc:
                        log.debug("closing the source: %s", exc)
            if self._stop.is_set():
                break
            if self._restart.is_set():
                self._restart.clear()
                self.state = "starting"
                continue
            delay = min(REOPEN_CAP_S, REOPEN_BASE_S * 2 ** min(failures, 10))
            self.reopens += 1
            deadline = time.monotonic() + delay
            while not self._stop.is_set() and time.monotonic() < deadline:
                self.heartbeat = time.monotonic()
                self._stop.wait(min(1.0, delay))

    def _stream(self, source: Any) -> bool:
        """Read until stop/restart (False) or the end of the stream (True)."""
        started = time.monotonic()
        fps = float(source.fps or 10.0)
        while not self._stop.is_set() and not self._restart.is_set():
            frame = source.read()
            if frame is None:
                if self._make_source_is_live():
                    raise RuntimeError("the camera returned no frame")
                return True
            now = time.monotonic()
            self.heartbeat = now
            self._recent.append(now)
            self.frames += 1
            if self._vision is not None:
                self._take_vision()
            if self.pipeline is not None:
                pir = self._pir.is_set()
                self._pir.clear()
                self._emit(self.pipeline.process(frame, pir=pir))
            if self.clips is not None:
                self.clips.offer(frame)  # a strided copy at clips.fps; drops rather than waits
            if self._snapshot_wanted.is_set():
                self._snapshot_wanted.clear()
                if self._vision is not None:
                    # A push that came during this frame's processing (commands queued for an
                    # offline device arrive back to back): its masks before the picture leaves.
                    self._take_vision()
                self._snapshot(frame)
            if self.pace:
                ahead = started + (frame.index + 1) / fps - time.monotonic()
                if ahead > 0:
                    self._stop.wait(ahead)
        return False

    def _take_vision(self) -> None:
        with self._vision_lock:
            vision, self._vision = self._vision, None
        if self.pipeline is None:
            return
        try:
            self.pipeline.reconfigure(vision)
        except Exception:  # never keep the old rules silently: start the pipeline afresh on the new ones
            log.exception("reconfiguring the pipeline failed; rebuilding it")
            self._emit(self.pipeline.finish())
            self.pipeline = self._make_pipeline() if self._make_pipeline is not None else None

    def _make_source_is_live(self) -> bool:
        return not self.pace

    def _emit(self, items: list[Any]) -> None:
        unsynced = self.clock.unsynced
        for item in items:
            event = item.event
            if unsynced and not event.clock_unsynced:
                event = dataclasses.replace(event, clock_unsynced=True)
            self.writer.event(event)  # the event first: its snapshot "follows"
            if item.snapshot is not None:
                self.writer.snapshot(item.snapshot, event.kind)
            if self.clips is not None:
                self.clips.on_event(item)
            self.events += 1

    def _finish(self) -> None:
        if self.pipeline is not None:
            try:
                self._emit(self.pipeline.finish())
            except Exception:
                log.exception("closing the open visits failed")
        if self.clips is not None:
            self.clips.stream_ended()  # cut the open clips now: the next stream's times start again
        self.pipeline = None

    def _mask(self, width: int, height: int) -> Any:
        """The vision config's masks at this size (agent.vision.masks.MaskCache), if there is a pipeline."""
        masks = getattr(self.pipeline, "masks", None)
        return masks.at(width, height) if masks is not None else None

    def _snapshot(self, frame: Any) -> None:
        from agent.vision.snapshot import make_snapshot

        try:
            snap = make_snapshot(
                frame.rgb,
                event_id=self.writer.next_event_id(),
                phase="start",
                time_ms=self.clock.now_ms(),
                crop=False,
                max_width=self._snapshot_width or 640,
                mask=self._mask(frame.width, frame.height),
            )
        except Exception as exc:
            self.error = f"snapshot: {type(exc).__name__}: {exc}"[:200]
            return
        self.writer.snapshot(snap, "person")

"""The on-device vision pipeline: frame → motion → (gated) detection → events.

Detection is the expensive step (tens of ms on a Pi), so it runs only when
there is a reason — motion, a PIR trigger, or a visit whose person stopped
moving — and never more often than ``detect_fps``. It looks at a square crop
around the motion (at least the model's input size, so a distant person is
not shrunk to a few pixels), or at the whole frame when the motion is large.

A frame-wide change (a cut, a lamp switched on, the IR-cut filter, someone
right at the lens) is a reason too: see ``agent.vision.relearn``. Only the
detector can start a visit then; motion events stay muted, so a light change
with nobody in view still ends with no event.

Where the picture keeps moving without a person (a swaying tree), motion
alone is no reason: ``agent.vision.clutter`` learns those cells, and motion
confined to them is looked at a few times a minute instead of on every frame.

Zones and profiles (docs/zones.md): the profile is chosen between frames
(agent.vision.profiles) and its rules handed to the trackers; ``reconfigure``
puts a pushed config into force the same way, keeping the motion background
and any visit in progress.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np

from agent.config_vision import VisionConfig
from agent.vision.clutter import ClutterMap, Verdict
from agent.vision.frame import Frame
from agent.vision.masks import MaskCache, black_out
from agent.vision.motion import MotionDetector, MotionResult
from agent.vision.profiles import ProfileSelector, rules_for
from agent.vision.relearn import LookRegions, LookSchedule, merge, whole_and_tiles
from agent.vision.snapshot import make_snapshot
from agent.vision.tracker import Box, DetectionLike, Emitted, MotionTracker, PersonTracker, SourceToWallMs
from protocol.codec import Snapshot
from protocol.ids import EventIdGenerator

Region = tuple[int, int, int, int]
RegionPicker = Callable[..., Region]
REPLAY_EPOCH_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z: replays get stable wall times


class Detector(Protocol):
    """What the pipeline needs from agent.vision.detector.PersonDetector."""

    runtime_name: str
    last_inference_ms: float | None

    def detect(self, rgb: np.ndarray, region: Region | None = None) -> Sequence[DetectionLike]: ...


def replay_clock(epoch_ms: int = REPLAY_EPOCH_MS) -> SourceToWallMs:
    """Wall time for a replay: a fixed epoch plus source time, so output is reproducible."""
    return lambda ts: epoch_ms + round(ts * 1000)


def live_clock() -> SourceToWallMs:
    return lambda _ts: int(time.time() * 1000)


def default_region_picker() -> RegionPicker:
    from agent.vision.detector import square_region_around

    return square_region_around


@dataclass
class PipelineStats:
    """Counters for health reports and the replay summary."""

    frames: int = 0
    motion_frames: int = 0
    inference_runs: int = 0
    relearn_runs: int = 0  # of inference_runs: looks after a frame-wide change
    pir_triggers: int = 0
    inference_ms: deque[float] = field(default_factory=lambda: deque(maxlen=512))
    _recent_ts: deque[float] = field(default_factory=lambda: deque(maxlen=64))

    def frame(self, ts: float) -> None:
        self.frames += 1
        self._recent_ts.append(ts)

    @property
    def motion_fps(self) -> float:
        """Frames through motion detection per second of frame time, recently."""
        if len(self._recent_ts) < 2:
            return 0.0
        span = self._recent_ts[-1] - self._recent_ts[0]
        return (len(self._recent_ts) - 1) / span if span > 0 else 0.0

    @property
    def inference_ms_p50(self) -> float | None:
        return statistics.median(self.inference_ms) if self.inference_ms else None


class VisionPipeline:
    def __init__(
        self,
        config: VisionConfig,
        detector: Detector | None,
        ids: EventIdGenerator,
        clock: SourceToWallMs,
        region_picker: RegionPicker | None = None,
        look_regions: LookRegions = whole_and_tiles,
        timezone: dt.tzinfo | None = None,
    ) -> None:
        """``timezone``: the agent's ``schedule.timezone``, the local time of ``night_hours``."""
        self.config = config
        self.detector = detector if config.detect.enabled else None
        self.motion = MotionDetector(config.motion)
        self.masks = MaskCache(config.motion.masks)
        self.stats = PipelineStats()
        self._clock = clock
        self._selector = ProfileSelector(config.profiles, timezone)
        self._profile = self._selector.choose(None, clock(0.0))
        self.persons: PersonTracker | None = None
        self._pick_region = region_picker or default_region_picker()
        if self.detector is not None:
            self.persons = PersonTracker(
                config.events, ids, clock, config.detect.score_threshold, self._snapshot, profile=self._profile
            )
        # "auto" (None) means motion events only where no person can be seen:
        # detection switched off, or no detector could be loaded.
        auto = config.events.motion_events is None
        wants_motion = self.detector is None if auto else bool(config.events.motion_events)
        self.motions = MotionTracker(config.events, ids, clock) if wants_motion else None
        self._last_run = -math.inf
        self._looks = LookSchedule(config.detect.relearn_fps)
        self._look_regions = look_regions
        self._rotation = 0
        self.clutter = ClutterMap(config.clutter) if config.clutter.enabled and self.persons is not None else None
        self._verdict: Verdict = "none"
        self._last_ts = 0.0
        self._apply_rules()

    @property
    def recalibrations(self) -> int:
        return self.motion.recalibrations

    @property
    def profile(self) -> str | None:
        """The profile in force (health ``pf``); None without ``vision.profiles``."""
        return self._profile

    def reconfigure(self, config: VisionConfig) -> None:
        """Put ``config`` into force now: zones, rules, profiles, thresholds and masks.

        The motion background is kept when the motion settings are unchanged (or only the
        masks changed), so a pushed config costs no re-warm-up and misses no one; a visit in
        progress goes on under the new rules. Whether detection and motion events run at all
        is fixed at start (the detector is loaded then): those keys need a restart.
        """
        old = self.config
        self.config = config
        if config.motion != old.motion:
            if replace(config.motion, masks=old.motion.masks) == old.motion:
                self.motion.set_masks(config.motion.masks)
            else:
                self.motion = MotionDetector(config.motion)
        if config.motion.masks != old.motion.masks:
            self.masks = MaskCache(config.motion.masks)
        if config.clutter != old.clutter or self.motion.frames == 0:  # a new detector: new cells
            enabled = config.clutter.enabled and self.persons is not None
            self.clutter = ClutterMap(config.clutter) if enabled else None
        if config.detect.relearn_fps != old.detect.relearn_fps:
            self._looks = LookSchedule(config.detect.relearn_fps)
        self._selector = ProfileSelector(config.profiles, self._selector.tz)
        self._profile = self._selector.choose(self.motion.monochrome, self._clock(self._last_ts))
        self._apply_rules()

    def _apply_rules(self) -> None:
        rules = rules_for(self.config, self._profile)
        if self.persons is not None:
            self.persons.configure(self.config.events, rules, self._profile)
        if self.motions is not None:
            self.motions.config, self.motions.rules, self.motions.profile = self.config.events, rules, self._profile

    def process(self, frame: Frame, pir: bool = False) -> list[Emitted]:
        """Run one frame through the pipeline; returns the events it caused."""
        ts = frame.ts
        self.stats.frame(ts)
        result = self.motion.process(frame.luma, ts, frame.chroma)
        self._last_ts = ts
        profile = self._selector.choose(self.motion.monochrome, self._clock(ts))
        if profile != self._profile:
            self._profile = profile
            self._apply_rules()
        if result.motion:
            self.stats.motion_frames += 1
        if pir:
            self.stats.pir_triggers += 1
        if self.clutter is not None:
            if result.recalibrated is not None:
                self.clutter.reset()
            self.clutter.observe(ts, self.motion.cell_counts, self.motion.cell_need, self.motion.cell_pixels)
        self._verdict = "none"
        out: list[Emitted] = []
        if self.persons is not None:
            if self._looks.due(ts, result):
                out += self._look(frame)
            elif (region := self._detection_region(frame, result, pir)) is not False:
                out += self._detect(frame, region)
            out += self.persons.tick(ts)
        if self.motions is not None:
            out += self.motions.observe(ts, result)
        return out

    def finish(self) -> list[Emitted]:
        """End open visits (the stream ended or the agent is stopping)."""
        out: list[Emitted] = []
        if self.persons is not None:
            out += self.persons.finish()
        if self.motions is not None:
            out += self.motions.finish()
        return out

    # -- detection gating -----------------------------------------------------
    def _detection_region(self, frame: Frame, result: MotionResult, pir: bool) -> Region | Literal[False] | None:
        """A pixel region to run detection on, None for the whole frame, or
        False when there is no reason (or it is too soon) to run."""
        d = self.config.detect
        since = frame.ts - self._last_run
        assert self.persons is not None
        if result.motion or pir:
            if since < 1.0 / d.detect_fps:
                return False
            if not result.motion:
                return None  # a PIR trigger without visible motion: look everywhere
            if self.clutter is not None and not pir and not self.persons.active:
                self._verdict = self.clutter.verdict(frame.ts)
                if self._verdict == "novel":
                    box = self.clutter.novel_box(*self.motion.cell_size)
                    if box is not None:
                        return self._square(box, frame)  # the new mover, not the tree beside it
                elif self._verdict == "clutter" and not self.clutter.budget_due(frame.ts):
                    return False
            return self._motion_region(frame, result.boxes)
        if result.state == "cooldown" and d.relearn_fps > 0 and not self.persons.active:
            return False  # nothing to re-check: the looks (or their early stop) decide
        if self.persons.active and d.track_check_fps > 0 and since >= 1.0 / d.track_check_fps:
            # The person may simply be standing still: keep checking where they were.
            box = self.persons.last_box
            return self._square(box, frame) if box is not None else None
        return False

    def _square(self, box: Box, frame: Frame) -> Region:
        d = self.config.detect
        return self._pick_region(
            box, frame.width, frame.height, min_side=d.min_crop, whole_frame_fraction=d.whole_frame_fraction
        )

    def _motion_region(self, frame: Frame, boxes: tuple[Box, ...]) -> Region:
        xs1, ys1, xs2, ys2 = zip(*boxes, strict=True)
        whole = (0, 0, frame.width, frame.height)
        region = self._square((min(xs1), min(ys1), max(xs2), max(ys2)), frame)
        if region != whole or len(boxes) == 1:
            return region
        # Separate movers (a person here, a swaying bush there) whose union
        # would need the whole frame: take their own crops in turn, biggest
        # first, so each is seen at full detail every few runs.
        ordered = sorted(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]), reverse=True)
        self._rotation += 1
        return self._square(ordered[self._rotation % len(ordered)], frame)

    def _detect(self, frame: Frame, region: Region | None) -> list[Emitted]:
        assert self.detector is not None and self.persons is not None
        self._last_run = frame.ts
        rgb = self._masked(frame, region)
        whole = (0, 0, frame.width, frame.height)
        detections = self.detector.detect(rgb, None if region == whole else region)
        self._count_run()
        self._teach(frame, detections, region or whole)
        return self.persons.observe(frame.ts, detections, rgb)

    def _teach(self, frame: Frame, detections: Sequence[DetectionLike], region: Region) -> None:
        if self.clutter is None:
            return
        cell = self.motion.cell_size
        w, h = frame.width, frame.height
        seen = (region[0] / w, region[1] / h, region[2] / w, region[3] / h)
        self.clutter.ran(frame.ts, seen, *cell)
        if detections:
            self.clutter.person_at(frame.ts, [d.box for d in detections], *cell)
        elif self._verdict == "novel" and (self.persons is None or not self.persons.active):
            self.clutter.looked(seen, *cell)

    def _look(self, frame: Frame) -> list[Emitted]:
        """One look after a frame-wide change: every region, one observation."""
        assert self.detector is not None and self.persons is not None
        self._last_run = frame.ts
        rgb = self._masked(frame)
        found: list[DetectionLike] = []
        for region in self._look_regions(frame.width, frame.height):
            whole = region == (0, 0, frame.width, frame.height)
            found += self.detector.detect(rgb, None if whole else region)
            self._count_run()
            self.stats.relearn_runs += 1
        detections = merge(found)
        if detections and self.clutter is not None:
            self.clutter.person_at(frame.ts, [d.box for d in detections], *self.motion.cell_size)
        emitted = self.persons.observe(frame.ts, detections, rgb)
        self._looks.looked(frame.ts, bool(detections), self.persons.active)
        return emitted

    def _masked(self, frame: Frame, region: Region | None = None) -> np.ndarray:
        """What the detector sees: the frame with the masks blacked out. A person wholly inside a
        mask (the neighbour's yard, the road) starts no visit, as motion there starts none; and
        every Pi behaves the same, since on the hardware clip path the camera's pre_callback has
        already blacked them out of the main stream (agent.clips.encoder).

        Blacking out copies the frame (2-4 ms at 1280x720 here), so it is done only when the
        masks reach into ``region``, the part the detector reads: a motion crop seldom does,
        since motion inside a mask never counts."""
        mask = self.masks.at(frame.width, frame.height)
        if mask is None:
            return frame.rgb
        if region is not None:
            x1, y1, x2, y2 = region
            if not mask[max(0, y1) : y2, max(0, x1) : x2].any():
                return frame.rgb
        return black_out(frame.rgb, mask)

    def _count_run(self) -> None:
        assert self.detector is not None
        self.stats.inference_runs += 1
        if self.detector.last_inference_ms is not None:
            self.stats.inference_ms.append(self.detector.last_inference_ms)

    def _snapshot(self, rgb: np.ndarray, box: Box | None, event_id: int, phase: str, time_ms: int) -> Snapshot | None:
        s = self.config.snapshot
        if not s.enabled:
            return None
        return make_snapshot(
            rgb,
            event_id=event_id,
            phase=phase,
            time_ms=time_ms,
            box=box,
            crop=s.crop,
            max_bytes=s.max_bytes,
            max_width=s.max_width,
            mask=self.masks.at(rgb.shape[1], rgb.shape[0]),
        )

"""Visits: turn per-run person detections (and, optionally, motion) into events.

One event per visit, sharing one event id across its phases:

* ``start`` once the visit is confirmed: at least ``confirm_hits`` of the last
  ``confirm_window`` detection runs (within ``confirm_span_s``) found a person
  and the median of their best scores passes the threshold — a single
  spurious detection never raises an alert;
* ``update`` when something significant changes (the number of people, the
  person moved a lot, a clearly better score) but not sooner than
  ``update_min_s`` after the previous message, and at least every
  ``update_every_s`` while the visit goes on;
* ``end`` after ``end_after_s`` without a person, with the visit's duration.

With zones (agent.vision.zones) every phase says which zones the visit has
entered and whether the zone rules let it alert; entering a zone, or becoming
alertable, sends an ``update`` at once, whatever ``update_min_s`` says, since
that is the moment the hub alerts. The rules in force (threshold,
confirmation, zones) are the active profile's and can change mid-visit.

A "visit" is presence, not identity: two people arriving together are one
visit with ``count`` 2. That is what a household alert needs, and it avoids
identity tracking, which a 300x300 detector at 3 fps cannot do reliably.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from agent.config_vision import EventsConfig
from agent.config_zones import Rules
from agent.vision.motion import MotionResult
from agent.vision.zones import ZoneTrack
from protocol.codec import Snapshot
from protocol.ids import EventIdGenerator
from protocol.messages import Event

Box = tuple[float, float, float, float]
SourceToWallMs = Callable[[float], int]  # source seconds → wall-clock epoch milliseconds
Snapshotter = Callable[[np.ndarray, Box | None, int, str, int], Snapshot | None]


class DetectionLike(Protocol):
    @property
    def score(self) -> float: ...

    @property
    def box(self) -> Box: ...


@dataclass(frozen=True, slots=True)
class Emitted:
    """An event as it leaves the device, plus what replay output needs."""

    event: Event
    ts: float  # source time (seconds) the event's time refers to
    score: float  # 0..1
    bbox: Box | None  # normalised floats
    snapshot: Snapshot | None = None


def permille(box: Box | None) -> tuple[int, int, int, int] | None:
    if box is None:
        return None
    x1, y1, x2, y2 = (min(1000, max(0, round(v * 1000))) for v in box)
    return min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)


def union(boxes: Sequence[Box]) -> Box:
    x1, y1, x2, y2 = zip(*boxes, strict=True)
    return min(x1), min(y1), max(x2), max(y2)


def _centre_shift(a: Box, b: Box) -> float:
    return math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2)


class _Visit:
    __slots__ = (
        "best_box",
        "best_rgb",
        "best_score",
        "box",
        "count",
        "event_id",
        "first_ts",
        "last_hit",
        "max_count",
        "sent_alertable",
        "sent_box",
        "sent_count",
        "sent_score",
        "sent_ts",
        "snap_score",
        "zones",
    )

    def __init__(self, event_id: int, first_ts: float, zones: ZoneTrack) -> None:
        self.event_id = event_id
        self.zones = zones
        self.sent_alertable = False
        self.first_ts = first_ts
        self.last_hit = first_ts
        self.box: Box = (0.0, 0.0, 0.0, 0.0)
        self.count = 0
        self.max_count = 0
        self.best_score = 0.0
        self.best_rgb: np.ndarray | None = None
        self.best_box: Box | None = None
        self.sent_ts = -math.inf
        self.sent_box: Box = self.box
        self.sent_count = 0
        self.sent_score = 0.0
        self.snap_score = -1.0


class PersonTracker:
    def __init__(
        self,
        config: EventsConfig,
        ids: EventIdGenerator,
        clock: SourceToWallMs,
        score_threshold: float = 0.5,
        snapshotter: Snapshotter | None = None,
        rules: Rules | None = None,
        profile: str | None = None,
    ) -> None:
        self.ids = ids
        self.clock = clock
        self.snapshotter = snapshotter
        self.configure(config, rules or Rules(score_threshold, config.confirm_hits, config.confirm_window), profile)
        self._zones = ZoneTrack()  # the zones of a visit not yet confirmed
        self.visit: _Visit | None = None
        self._runs: deque[tuple[float, float]] = deque()  # (ts, best score) of recent runs
        self._pending_best: tuple[float, np.ndarray | None, Box | None] = (0.0, None, None)
        self._first_hit: float | None = None
        self._pending_ts = -math.inf
        self._hits: deque[float] = deque()  # times of recent runs that found someone
        self.visits = 0

    def configure(self, config: EventsConfig, rules: Rules, profile: str | None) -> None:
        """The rules in force from now on; a visit in progress goes on under them."""
        self.config = replace(config, confirm_hits=rules.confirm_hits, confirm_window=rules.confirm_window)
        self.threshold = rules.score_threshold
        self.rules = rules
        self.profile = profile

    @property
    def active(self) -> bool:
        return self.visit is not None

    @property
    def last_box(self) -> Box | None:
        return self.visit.box if self.visit is not None else None

    def observe(self, ts: float, detections: Sequence[DetectionLike], rgb: np.ndarray | None) -> list[Emitted]:
        """One detection run's result (an empty list counts: nobody was found)."""
        best = max((d.score for d in detections), default=0.0)
        if self.visit is None:
            return self._observe_pending(ts, detections, best, rgb)
        visit = self.visit
        if not detections:
            return []
        visit.last_hit = ts
        visit.box = union([d.box for d in detections])
        visit.count = len(detections)
        visit.max_count = max(visit.max_count, visit.count)
        if best > visit.best_score:
            top = max(detections, key=lambda d: d.score)
            visit.best_score, visit.best_rgb, visit.best_box = best, rgb, top.box
        c = self.config
        entered = visit.zones.observe(ts, [d.box for d in detections], self.rules.zones)
        alertable = visit.zones.view("person", self.rules).alertable
        if entered or (alertable and not visit.sent_alertable):
            return [self._emit(visit, "update", ts, best)]
        since = ts - visit.sent_ts
        significant = (
            visit.count != visit.sent_count
            or _centre_shift(visit.box, visit.sent_box) >= c.moved
            or best >= visit.sent_score + c.better_score
        )
        if (significant and since >= c.update_min_s) or since >= c.update_every_s:
            return [self._emit(visit, "update", ts, best)]
        return []

    def _observe_pending(
        self, ts: float, detections: Sequence[DetectionLike], best: float, rgb: np.ndarray | None
    ) -> list[Emitted]:
        c = self.config
        runs = self._runs
        runs.append((ts, best))
        while len(runs) > c.confirm_window or runs[0][0] < ts - c.confirm_span_s:
            runs.popleft()
        hits = self._hits
        while hits and hits[0] < ts - c.confirm_span_s:
            hits.popleft()
        if not hits:
            self._pending_best = (0.0, None, None)  # let go of a stale frame
            self._zones = ZoneTrack()
        if not detections:
            return []
        self._zones.observe(ts, [d.box for d in detections], self.rules.zones)
        if best >= self.threshold:
            hits.append(ts)
        if not hits:
            return []
        # The visit will date from the earliest recent hit, and its first
        # snapshot is the best frame among the recent hits.
        self._first_hit = hits[0]
        if best > self._pending_best[0] or self._pending_ts < self._first_hit:
            top = max(detections, key=lambda d: d.score)
            self._pending_best = (best, rgb, top.box)
            self._pending_ts = ts
        scores = [score for _, score in runs]
        passing = sum(score >= self.threshold for score in scores)
        if passing < c.confirm_hits or statistics.median(scores) < self.threshold:
            return []
        assert self._first_hit is not None
        visit = _Visit(self.ids.next(), self._first_hit, self._zones)
        self._zones = ZoneTrack()
        visit.last_hit = ts
        visit.box = union([d.box for d in detections])
        visit.count = visit.max_count = len(detections)
        visit.best_score, visit.best_rgb, visit.best_box = self._pending_best
        self.visit = visit
        self.visits += 1
        self._runs.clear()
        self._hits.clear()
        self._first_hit = None
        self._pending_best = (0.0, None, None)
        return [self._emit(visit, "start", visit.first_ts, visit.best_score)]

    def tick(self, ts: float) -> list[Emitted]:
        """Call on every frame: ends a visit that has gone quiet."""
        visit = self.visit
        if visit is None or ts - visit.last_hit < self.config.end_after_s:
            return []
        return [self._end(visit)]

    def finish(self) -> list[Emitted]:
        """End an open visit (the stream ended)."""
        return [self._end(self.visit)] if self.visit is not None else []

    def _end(self, visit: _Visit) -> Emitted:
        self.visit = None
        visit.count = visit.max_count
        emitted = self._emit(visit, "end", visit.last_hit, visit.best_score)
        visit.best_rgb = None  # the frame can go now
        return emitted

    def _emit(self, visit: _Visit, phase: str, ts: float, score: float) -> Emitted:
        time_ms = self.clock(ts)
        snapshot = None
        improved = visit.best_score >= visit.snap_score + self.config.better_score
        if self.snapshotter is not None and visit.best_rgb is not None and improved:
            snapshot = self.snapshotter(visit.best_rgb, visit.best_box, visit.event_id, phase, time_ms)
            if snapshot is not None:
                visit.snap_score = visit.best_score
        view = visit.zones.view("person", self.rules)
        event = Event(
            event_id=visit.event_id,
            kind="person",
            phase=phase,
            time_ms=time_ms,
            score=min(100, round(score * 100)),
            bbox=permille(visit.box),
            count=min(100, visit.count),
            has_snapshot=snapshot is not None,
            duration_s=round(visit.last_hit - visit.first_ts) if phase == "end" else None,
            zones=view.zones or None,
            loiter_s=view.loiter_s,
            no_alert=not view.alertable,
            profile=self.profile,
        )
        visit.sent_ts, visit.sent_box, visit.sent_count = ts, visit.box, visit.count
        visit.sent_alertable = view.alertable
        visit.sent_score = max(visit.sent_score, score)
        return Emitted(event, ts, score, visit.box, snapshot)


class MotionTracker:
    """Motion-only visits, for cameras without person detection (or when asked)."""

    def __init__(
        self,
        config: EventsConfig,
        ids: EventIdGenerator,
        clock: SourceToWallMs,
        rules: Rules | None = None,
        profile: str | None = None,
    ) -> None:
        self.config = config
        self.ids = ids
        self.clock = clock
        self.rules = rules or Rules(0.5, config.confirm_hits, config.confirm_window)
        self.profile = profile
        self._zones = ZoneTrack()
        self._since: float | None = None  # motion seen continuously since
        self._last_motion = -math.inf
        self._event_id: int | None = None
        self._start_ts = 0.0
        self._fraction = 0.0
        self._box: Box | None = None
        self._sent_ts = -math.inf
        self.visits = 0

    @property
    def active(self) -> bool:
        return self._event_id is not None

    def observe(self, ts: float, result: MotionResult) -> list[Emitted]:
        c = self.config
        out: list[Emitted] = []
        if result.motion:
            if self._since is None or ts - self._last_motion > 1.0:
                self._since = ts
                if not self.active:
                    self._zones = ZoneTrack()
            self._last_motion = ts
            box = result.union()
            # Where the mover is, by the feet of this frame's motion, not the visit's growing union.
            entered = self._zones.observe(ts, [box] if box is not None else [], self.rules.zones)
            self._box = box if self._box is None or not self.active else union([self._box, box or self._box])
            self._fraction = max(self._fraction, result.fraction) if self.active else result.fraction
            if not self.active and ts - self._since >= c.motion_start_s:
                self._event_id = self.ids.next()
                self._start_ts = self._since
                self.visits += 1
                out.append(self._emit("start", self._since))
            elif self.active and (entered or ts - self._sent_ts >= c.update_every_s):
                out.append(self._emit("update", ts))
        return out + self.tick(ts)

    def tick(self, ts: float) -> list[Emitted]:
        if self.active and ts - self._last_motion >= self.config.motion_end_s:
            return [self._end()]
        return []

    def finish(self) -> list[Emitted]:
        return [self._end()] if self.active else []

    def _end(self) -> Emitted:
        emitted = self._emit("end", self._last_motion)
        self._event_id, self._since, self._box = None, None, None
        return emitted

    def _emit(self, phase: str, ts: float) -> Emitted:
        assert self._event_id is not None
        view = self._zones.view("motion", self.rules)
        event = Event(
            event_id=self._event_id,
            kind="motion",
            phase=phase,
            time_ms=self.clock(ts),
            score=min(100, round(self._fraction * 100)),
            bbox=permille(self._box),
            duration_s=round(self._last_motion - self._start_ts) if phase == "end" else None,
            zones=view.zones or None,
            loiter_s=view.loiter_s,
            no_alert=not view.alertable,
            profile=self.profile,
        )
        self._sent_ts = ts
        return Emitted(event, ts, self._fraction, self._box)

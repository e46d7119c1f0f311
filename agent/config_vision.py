"""The ``vision:`` section of the agent's YAML config: motion, detection, events.

Example (every key optional)::

    vision:
      sensitivity: medium          # low | medium | high (motion presets)
      masks:                       # areas where motion never counts, 0..1 of the frame
        - [[0.0, 0.0], [0.4, 0.0], [0.4, 0.25], [0.0, 0.25]]
      motion: {threshold: 18, min_area: 0.003}
      detect: {detect_fps: 3, score_threshold: 0.5, num_threads: 2}
      events: {end_after_s: 5, motion_events: false}
      snapshot: {max_bytes: 12000, crop: true}

Like ``agent.config``, every problem names its dotted key, the value found and
what was expected, and all problems are reported together.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from agent.config import ConfigError
from agent.vision.masks import check_polygon
from agent.vision.motion import PRESETS, MotionSettings, settings_for


@dataclass(frozen=True, slots=True)
class DetectConfig:
    enabled: bool = True
    model: Path | None = None  # None: the packaged uint8 SSDLite person model
    num_threads: int = 2
    score_threshold: float = 0.5  # a detection below this is ignored
    detect_fps: float = 3.0  # at most this many detection runs per second
    track_check_fps: float = 1.0  # re-check a visit whose person stopped moving
    # Full-frame runs per second after a frame-wide change (a cut, a lamp, the
    # IR switch, something at the lens) while motion re-learns; 0: none.
    relearn_fps: float = 3.0
    min_crop: int = 300  # smallest square crop around motion, pixels
    whole_frame_fraction: float = 0.5  # motion bigger than this: detect on the whole frame


@dataclass(frozen=True, slots=True)
class EventsConfig:
    confirm_hits: int = 2  # detection runs with a person before a visit starts ...
    confirm_window: int = 3  # ... among the last N runs, whose median score must pass
    confirm_span_s: float = 4.0  # runs older than this do not count towards confirmation
    end_after_s: float = 5.0  # a visit ends after this long without a person detection
    update_min_s: float = 3.0  # no update sooner than this after the previous message
    update_every_s: float = 30.0  # a visit that goes on sends an update at least this often
    moved: float = 0.25  # centre moved by this share of the frame: significant
    better_score: float = 0.1  # score rose by this much: significant (and a better snapshot)
    motion_events: bool | None = None  # None: only when person detection is off
    motion_start_s: float = 0.5  # motion must last this long to start a motion event
    motion_end_s: float = 5.0


@dataclass(frozen=True, slots=True)
class SnapshotConfig:
    enabled: bool = True
    max_bytes: int = 12_000
    max_width: int = 640
    crop: bool = True  # crop around the person rather than send the whole frame


@dataclass(frozen=True, slots=True)
class VisionConfig:
    sensitivity: str = "medium"
    motion: MotionSettings = field(default_factory=MotionSettings)
    detect: DetectConfig = field(default_factory=DetectConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig)

    @property
    def motion_events(self) -> bool:
        if self.events.motion_events is None:
            return not self.detect.enabled
        return self.events.motion_events


Check = Callable[[Any], Any]


def _num(lo: float, hi: float, integer: bool = False) -> Check:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            return None
        if integer:
            return v if isinstance(v, int) else None
        return float(v)

    return check


def _bool(v: Any) -> Any:
    return v if isinstance(v, bool) else None


def _opt_bool(v: Any) -> Any:
    return v if isinstance(v, bool) else (None if v != "auto" else "auto")


def _path(v: Any) -> Any:
    return Path(v) if isinstance(v, str) and v else None


# key: (check, what was expected). Ranges are what still makes sense on a Pi.
_MOTION: dict[str, tuple[Check, str]] = {
    "threshold": (_num(1, 200, True), "an integer 1..200 (luma levels)"),
    "cell_fraction": (_num(0.01, 1.0), "a fraction 0.01..1"),
    "min_area": (_num(0.0, 0.5), "a fraction of the frame 0..0.5"),
    "alpha": (_num(0.004, 0.5), "a learning rate 0.004..0.5"),
    "work_width": (_num(32, 480, True), "an integer 32..480 (pixels)"),
    "global_fraction": (_num(0.1, 1.0), "a fraction 0.1..1"),
    "warmup_s": (_num(0.0, 60.0), "seconds 0..60"),
    "cooldown_s": (_num(0.0, 60.0), "seconds 0..60"),
    "chroma_drop": (_num(0.0, 0.95), "a ratio 0..0.95"),
    "grey_chroma": (_num(0.0, 50.0), "a colourfulness 0..50"),
}
_DETECT: dict[str, tuple[Check, str]] = {
    "enabled": (_bool, "true or false"),
    "model": (_path, "a .tflite file path"),
    "num_threads": (_num(1, 8, True), "an integer 1..8"),
    "score_threshold": (_num(0.05, 0.99), "a score 0.05..0.99"),
    "detect_fps": (_num(0.1, 30.0), "detection runs per second 0.1..30"),
    "track_check_fps": (_num(0.0, 30.0), "checks per second 0..30 (0: never)"),
    "relearn_fps": (_num(0.0, 30.0), "full-frame runs per second after a frame-wide change 0..30 (0: none)"),
    "min_crop": (_num(64, 4096, True), "pixels 64..4096"),
    "whole_frame_fraction": (_num(0.05, 1.0), "a fraction 0.05..1"),
}
_EVENTS: dict[str, tuple[Check, str]] = {
    "confirm_hits": (_num(1, 20, True), "an integer 1..20"),
    "confirm_window": (_num(1, 20, True), "an integer 1..20"),
    "confirm_span_s": (_num(0.5, 60.0), "seconds 0.5..60"),
    "end_after_s": (_num(0.5, 600.0), "seconds 0.5..600"),
    "update_min_s": (_num(0.0, 600.0), "seconds 0..600"),
    "update_every_s": (_num(1.0, 3600.0), "seconds 1..3600"),
    "moved": (_num(0.01, 1.0), "a share of the frame 0.01..1"),
    "better_score": (_num(0.01, 1.0), "a score difference 0.01..1"),
    "motion_events": (_opt_bool, "true, false or auto"),
    "motion_start_s": (_num(0.0, 60.0), "seconds 0..60"),
    "motion_end_s": (_num(0.5, 600.0), "seconds 0.5..600"),
}
_SNAPSHOT: dict[str, tuple[Check, str]] = {
    "enabled": (_bool, "true or false"),
    "max_bytes": (_num(2000, 60_000, True), "bytes 2000..60000"),
    "max_width": (_num(64, 1920, True), "pixels 64..1920"),
    "crop": (_bool, "true or false"),
}
_TOP = {"sensitivity", "masks", "motion", "detect", "events", "snapshot"}


class _Problems:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.items: list[str] = []

    def fail(self, key: str, value: object, expected: str) -> None:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        self.items.append(f"{self.prefix}{key}: found {shown}, expected {expected}")

    def section(self, doc: Mapping[str, Any], key: str, spec: Mapping[str, tuple[Check, str]]) -> dict[str, Any]:
        raw = doc.get(key)
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.fail(key, raw, "a mapping")
            return {}
        out: dict[str, Any] = {}
        for name, value in raw.items():
            if name not in spec:
                self.fail(f"{key}.{name}", value, f"one of the known keys ({', '.join(sorted(spec))})")
                continue
            check, expected = spec[name]
            checked = check(value)
            if checked is None:
                self.fail(f"{key}.{name}", value, expected)
            else:
                out[name] = checked
        return out


def parse_vision(doc: Any, source: str = "config", prefix: str = "vision.") -> VisionConfig:
    """Validate the ``vision`` mapping; raise ConfigError listing every problem."""
    if doc is None:
        return VisionConfig()
    p = _Problems(prefix)
    if not isinstance(doc, Mapping):
        raise ConfigError([f"{prefix.rstrip('.')}: found {type(doc).__name__}, expected a mapping"], source)
    for extra in sorted(set(doc) - _TOP):
        p.fail(extra, doc[extra], f"one of the known keys ({', '.join(sorted(_TOP))})")
    sensitivity = doc.get("sensitivity", "medium")
    if sensitivity not in PRESETS:
        p.fail("sensitivity", sensitivity, f"one of {', '.join(PRESETS)}")
        sensitivity = "medium"
    masks = _masks(p, doc.get("masks"))
    motion_kw = p.section(doc, "motion", _MOTION)
    detect_kw = p.section(doc, "detect", _DETECT)
    events_kw = p.section(doc, "events", _EVENTS)
    snapshot_kw = p.section(doc, "snapshot", _SNAPSHOT)
    if events_kw.get("motion_events") == "auto":
        events_kw["motion_events"] = None
    if p.items:
        raise ConfigError(p.items, source)
    try:
        motion = settings_for(sensitivity, masks=tuple(masks), **motion_kw)
    except ValueError as exc:  # cross-field rules inside MotionSettings
        raise ConfigError([f"{prefix}{exc}"], source) from None
    return VisionConfig(
        sensitivity=sensitivity,
        motion=motion,
        detect=DetectConfig(**detect_kw),
        events=EventsConfig(**events_kw),
        snapshot=SnapshotConfig(**snapshot_kw),
    )


def _masks(p: _Problems, raw: Any) -> list[list[tuple[float, float]]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        p.fail("masks", raw, "a list of polygons, each a list of [x, y] points in 0..1")
        return []
    masks = []
    for i, polygon in enumerate(raw):
        try:
            masks.append(check_polygon(polygon, f"{p.prefix}masks[{i}]"))
        except ValueError as exc:
            p.items.append(str(exc))
    return masks


def load_vision_config(path: Path | str) -> VisionConfig:
    """Read a YAML file and validate its ``vision:`` section (the rest is ignored here)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror or exc}"], str(path)) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"not valid YAML: {exc}"], str(path)) from None
    if doc is None:
        return VisionConfig()
    if not isinstance(doc, Mapping):
        raise ConfigError([f"(top level): found {type(doc).__name__}, expected a mapping"], str(path))
    return parse_vision(doc.get("vision"), str(path))


def describe(config: VisionConfig) -> dict[str, Any]:
    """The effective settings as plain data (for a summary or a debug dump)."""

    def plain(obj: Any) -> Any:
        if hasattr(obj, "__dataclass_fields__"):
            return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
        if isinstance(obj, tuple | list):
            return [plain(v) for v in obj]
        return str(obj) if isinstance(obj, Path) else obj

    return {**plain(config), "motion_events_effective": config.motion_events}

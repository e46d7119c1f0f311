"""The ``vision:`` section of the agent's YAML config: motion, detection, events.

Example (every key optional)::

    vision:
      sensitivity: medium          # low | medium | high (motion presets)
      masks:                       # areas where motion never counts, 0..1 of the frame
        - [[0.0, 0.0], [0.4, 0.0], [0.4, 0.25], [0.0, 0.25]]
      motion: {threshold: 18, min_area: 0.003}
      detect: {detect_fps: 3, score_threshold: 0.5, num_threads: 2}
      events: {end_after_s: 5, motion_events: false}
      clutter: {looks_per_min: 4, learn_s: 30}
      snapshot: {max_bytes: 10000, crop: true}

The sections are plain dataclasses (the tracker and pipeline read them); their
``Annotated`` fields are the schema (xlconfig), whose ranges are what still
makes sense on a Pi. Motion settings default to the chosen sensitivity's
preset, so their defaults live in agent.vision.motion and only there.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Interval, MinLen

from agent.config_zones import MAX_ZONES, Profiles, ProfilesFile, Rules, Zone, ZoneFile, zone_config
from agent.vision.motion import MotionSettings, settings_for
from xlconfig import (
    SECTION,
    BeforeValidator,
    Bool,
    ConfigError,
    Expect,
    Field,
    Float,
    Int,
    NonEmptyPath,
    Str,
    read_yaml,
    validate,
)


@dataclass(frozen=True, slots=True)
class DetectConfig:
    enabled: Annotated[Bool, Field(description="Run the person detector where something moves.")] = True
    model: Annotated[
        NonEmptyPath | None, Field(description="A .tflite model; unset: the packaged uint8 SSDLite person model.")
    ] = None
    num_threads: Annotated[Int, Field(ge=1, le=8, description="Detector threads.")] = 2
    score_threshold: Annotated[
        Float, Field(ge=0.05, le=0.99, description="A detection below this score is ignored.")
    ] = 0.5
    detect_fps: Annotated[Float, Field(ge=0.1, le=30, description="At most this many detection runs per second.")] = 3.0
    track_check_fps: Annotated[
        Float, Field(ge=0, le=30, description="Re-check a visit whose person stopped moving this often (0: never).")
    ] = 1.0
    relearn_fps: Annotated[
        Float,
        Field(
            ge=0,
            le=30,
            description="Full-frame runs per second after a "
            "frame-wide change (a lamp, the IR switch) while motion re-learns "
            "(0: none).",
        ),
    ] = 3.0
    min_crop: Annotated[Int, Field(ge=64, le=4096, description="Smallest square crop around motion, pixels.")] = 300
    whole_frame_fraction: Annotated[
        Float,
        Field(ge=0.05, le=1, description="Motion bigger than this share of the frame: detect on the whole frame."),
    ] = 0.5


@dataclass(frozen=True, slots=True)
class ClutterConfig:
    """Learning where the picture moves without a person (agent.vision.clutter)."""

    enabled: Annotated[
        Bool, Field(description="Learn where things sway (trees, bushes) and run the detector there less often.")
    ] = True
    learn_s: Annotated[
        Float, Field(ge=2, le=3600, description="Seconds; how far back a cell's share of moving frames looks.")
    ] = 30.0
    clutter_rate: Annotated[
        Float, Field(ge=0.01, le=0.9, description="A cell moving on this share of frames (and no person) is clutter.")
    ] = 0.1
    looks_per_min: Annotated[
        Float,
        Field(ge=0, le=60, description="Detection runs a minute when only clutter moves (0: none until new motion)."),
    ] = 4.0
    novel_cells: Annotated[
        Int, Field(ge=1, le=50, description="Moving cells outside the clutter that call the detector at once.")
    ] = 3
    person_hold_s: Annotated[
        Float,
        Field(ge=0, le=3600, description="Seconds after a detection that the person's cells cannot be clutter."),
    ] = 15.0


def _auto(value: Any) -> Any:
    return None if value == "auto" else value


@dataclass(frozen=True, slots=True)
class EventsConfig:
    confirm_hits: Annotated[
        Int, Field(ge=1, le=20, description="Detection runs with a person before a visit starts ...")
    ] = 2
    confirm_window: Annotated[
        Int, Field(ge=1, le=20, description="... among the last N runs, whose median score must pass.")
    ] = 3
    confirm_span_s: Annotated[
        Float, Field(ge=0.5, le=60, description="Seconds; runs older than this do not count towards confirmation.")
    ] = 4.0
    end_after_s: Annotated[
        Float, Field(ge=0.5, le=600, description="Seconds; a visit ends after this long without a person detection.")
    ] = 5.0
    update_min_s: Annotated[
        Float, Field(ge=0, le=600, description="Seconds; no update sooner than this after the previous message.")
    ] = 3.0
    update_every_s: Annotated[
        Float, Field(ge=1, le=3600, description="Seconds; a visit that goes on sends an update at least this often.")
    ] = 30.0
    moved: Annotated[
        Float, Field(ge=0.01, le=1, description="The person's centre moved by this share of the frame: an update.")
    ] = 0.25
    better_score: Annotated[
        Float, Field(ge=0.01, le=1, description="The score rose by this much: an update (and a better snapshot).")
    ] = 0.1
    motion_events: Annotated[
        Bool | None,
        BeforeValidator(_auto),
        Expect("true, false or auto"),
        Field(description="Send motion-only events; auto: only when person detection is off."),
    ] = None
    motion_start_s: Annotated[
        Float, Field(ge=0, le=60, description="Seconds motion must last to start a motion event.")
    ] = 0.5
    motion_end_s: Annotated[
        Float, Field(ge=0.5, le=600, description="Seconds without motion that end a motion event.")
    ] = 5.0


@dataclass(frozen=True, slots=True)
class SnapshotConfig:
    enabled: Annotated[Bool, Field(description="Send a picture with each person visit.")] = True
    max_bytes: Annotated[
        Int,
        Field(
            ge=2000,
            le=60_000,
            description="JPEG size cap, bytes: at 10000 a person is tall enough to recognise "
            "and the detector still finds them (bench/snapshot_size.py).",
        ),
    ] = 10_000
    max_width: Annotated[Int, Field(ge=64, le=1920, description="Pixels.")] = 640
    crop: Annotated[Bool, Field(description="Crop around the person rather than send the whole frame.")] = True


@dataclass(frozen=True, slots=True)
class VisionConfig:
    sensitivity: str = "medium"
    motion: MotionSettings = field(default_factory=MotionSettings)
    detect: DetectConfig = field(default_factory=DetectConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig)
    clutter: ClutterConfig = field(default_factory=ClutterConfig)
    zones: tuple[Zone, ...] = ()
    required_zones: tuple[str, ...] = ()
    profiles: Profiles | None = None  # None: no profiles, events carry no ``pf``

    @property
    def rules(self) -> Rules:
        """The top-level rules, before any profile's overrides (agent.vision.profiles)."""
        return Rules(
            self.detect.score_threshold,
            self.events.confirm_hits,
            self.events.confirm_window,
            self.zones,
            self.required_zones,
        )

    @property
    def motion_events(self) -> bool:
        if self.events.motion_events is None:
            return not self.detect.enabled
        return self.events.motion_events


# -- the file's shape, where it differs from the objects above -------------------------------------------


def _opt(lo: float, hi: float, what: str) -> Any:
    return Field(ge=lo, le=hi, description=f"{what} (unset: the sensitivity preset's value)")


@dataclass(frozen=True)
class MotionOverrides:
    """Motion settings an installer overrides; unset ones come from the sensitivity preset."""

    threshold: Annotated[Int | None, _opt(1, 200, "Luma levels a pixel must differ from the background")] = None
    cell_fraction: Annotated[Float | None, _opt(0.01, 1, "Share of a cell's pixels that must change")] = None
    min_area: Annotated[Float | None, _opt(0, 0.5, "Smallest region that counts, a fraction of the frame")] = None
    alpha: Annotated[Float | None, _opt(0.004, 0.5, "Background learning rate per frame")] = None
    work_width: Annotated[Int | None, _opt(32, 480, "Pixels across the frame that motion works on")] = None
    global_fraction: Annotated[Float | None, _opt(0.1, 1, "More of the frame than this changing at once is light")] = (
        None
    )
    warmup_s: Annotated[Float | None, _opt(0, 60, "Seconds to learn the scene after start")] = None
    cooldown_s: Annotated[Float | None, _opt(0, 60, "Seconds motion is muted after a light change")] = None
    chroma_drop: Annotated[
        Float | None, _opt(0, 0.95, "Colour falling below this share of its recent level means the IR light came on")
    ] = None
    grey_chroma: Annotated[Float | None, _opt(0, 50, "Below this colourfulness a frame is monochrome")] = None


_Coord = Annotated[Float, Interval(ge=0, le=1)]
_Polygon = Annotated[tuple[tuple[_Coord, _Coord], ...], MinLen(3)]


@dataclass(frozen=True)
class VisionFile:
    sensitivity: Annotated[Literal["low", "medium", "high"], Field(description="Motion preset.")] = "medium"
    masks: Annotated[
        tuple[_Polygon, ...],
        Expect("a list of polygons, each at least 3 [x, y] points within 0..1 of the frame"),
        Field(description="Areas where motion never counts, e.g. [[[0, 0], [0.4, 0], [0.4, 0.25], [0, 0.25]]]."),
    ] = ()
    motion: Annotated[MotionOverrides, SECTION] = field(default_factory=MotionOverrides)
    detect: Annotated[DetectConfig, SECTION] = field(default_factory=DetectConfig)
    events: Annotated[EventsConfig, SECTION] = field(default_factory=EventsConfig)
    snapshot: Annotated[SnapshotConfig, SECTION] = field(default_factory=SnapshotConfig)
    clutter: Annotated[ClutterConfig, SECTION] = field(default_factory=ClutterConfig)
    zones: Annotated[
        tuple[ZoneFile, ...],
        Expect(f"a list of at most {MAX_ZONES} zones, each {{name, polygon, kinds, inertia_s, loiter_s}}"),
        Field(max_length=MAX_ZONES, description="Named areas with their own alert rules (docs/zones.md)."),
    ] = ()
    required_zones: Annotated[
        tuple[Str, ...],
        Expect("a list of zone names"),
        Field(description="An alert only once a visit has entered one of these; empty: anywhere."),
    ] = ()
    profiles: Annotated[ProfilesFile | None, Field(description="Day and night rules (docs/zones.md).")] = None

    def to_config(self, prefix: str = "vision.") -> VisionConfig:
        overrides = {f.name: getattr(self.motion, f.name) for f in fields(MotionOverrides)}
        masks = tuple(list(polygon) for polygon in self.masks)  # each polygon a list of (x, y), as before
        motion = settings_for(self.sensitivity, masks=masks, **{k: v for k, v in overrides.items() if v is not None})
        zoned = zone_config(self.zones, self.required_zones, self.profiles, prefix)
        return VisionConfig(
            self.sensitivity,
            motion,
            self.detect,
            self.events,
            self.snapshot,
            self.clutter,
            zoned.zones,
            zoned.required_zones,
            zoned.profiles,
        )


def parse_vision(doc: Any, source: str = "config", prefix: str = "vision.") -> VisionConfig:
    """Validate the ``vision`` mapping; raise ConfigError listing every problem."""
    try:
        return validate(VisionFile, doc, prefix).to_config(prefix)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None
    except ValueError as exc:  # MotionSettings' own invariants, should the schema ever allow more than they do
        raise ConfigError(f"{prefix}motion: {exc}", source) from None


def load_vision_config(path: Path | str) -> VisionConfig:
    """Read a YAML file and validate its ``vision:`` section (the rest is ignored here)."""

    def vision_of(doc: Any, source: str) -> VisionConfig:
        if doc is None:
            return VisionConfig()
        if not isinstance(doc, dict):
            raise ConfigError(f"(top level): found {type(doc).__name__}, expected a mapping", source)
        return parse_vision(doc.get("vision"), source)

    return read_yaml(Path(path), vision_of)


def describe(config: VisionConfig) -> dict[str, Any]:
    """The effective settings as plain data (for a summary or a debug dump)."""

    def plain(obj: Any) -> Any:
        if hasattr(obj, "__dataclass_fields__"):
            return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
        if isinstance(obj, tuple | list):
            return [plain(v) for v in obj]
        return str(obj) if isinstance(obj, Path) else obj

    return {**plain(config), "motion_events_effective": config.motion_events}

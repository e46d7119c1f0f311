"""Message types of the wire contract, each with its schema version.

Python names are long and clear; wire keys are short (see protocol/README.md
for the table). ``to_wire`` gives the dict the codec serialises; ``from_wire``
validates a decoded dict and raises only ProtocolError.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from protocol import limits
from protocol.errors import ProtocolError
from protocol.fields import (
    opt_bool,
    opt_box,
    opt_float,
    opt_int,
    opt_names,
    opt_object,
    opt_str,
    req_enum,
    req_int,
    req_str,
)
from protocol.ids import EVENT_ID_MAX, is_device_id

SEQ_MAX = EVENT_ID_MAX  # outbox numbers "q": exact as JSON numbers, like event ids

EVENT_KINDS = frozenset({"motion", "person", "panic", "tamper"})
EVENT_PHASES = frozenset({"start", "update", "end"})
CAMERA_STATES = frozenset({"ok", "starting", "error", "off"})
CLOCK_STATES = frozenset({"synced", "unsynced", "unknown"})
DEVICE_STATES = frozenset({"online", "offline"})
ACK_OF = frozenset({"cmd", "alert"})
ALERT_KINDS = frozenset({"panic", "person", "test"})
ALERT_PHASES = frozenset({"raise", "clear"})
COMMAND_OPS = frozenset(
    {"arm", "disarm", "schedule", "snapshot", "reload", "restart", "identify", "update", "clip", "clips", "config"}
    | {"alert"}  # issue 21: an escalated alert for a 治安户长's own device (protocol/README.md)
)
# A profile name: "day", "night" or an installer's own (agent config ``vision.profiles``).
PROFILE_NAME = re.compile(r"[a-z][a-z0-9_]{0,15}")
MAX_CONFIG_REV = (1 << 31) - 1
# What the `clips` policy may upload at once (docs/clips.md): panic clips, and
# person clips recorded in armed hours. Anything else waits for a `clip` request.
CLIP_AUTO = frozenset({"panic", "person_armed"})
MAX_CLIP_DAILY_BYTES = 1 << 40
# Over-the-air update states in health "us" (docs/ota.md section 2).
UPDATE_STATES = frozenset({"idle", "wait", "dl", "inst", "trial", "ok", "fail", "rb"})
MAX_UPDATE_ERROR_LEN = 160
MAX_VERSION_LEN = 32

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_DEVICE = re.compile(r"[0-9]{20}")
# The characters of a PEP 440 version; the device parses it fully (agent/update/versions.py).
VERSION_TEXT = re.compile(r"[0-9][A-Za-z0-9.+!_-]*")
T_RANGE = (0, limits.MAX_TIME_MS)


def _version(obj: dict[str, Any]) -> int:
    version = obj.get("v")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProtocolError("bad_version", f"schema version 'v' must be an integer, got {version!r:.20}")
    if version not in limits.SUPPORTED_VERSIONS:
        raise ProtocolError("bad_version", f"schema version {version} is not supported")
    return version


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


@dataclass(frozen=True, slots=True)
class Event:
    """One phase of one visit: start, update or end.

    ``score`` is a confidence 0–100 (percent; for motion, the share of the
    frame in motion). ``bbox`` is [x1, y1, x2, y2] in permille of the frame.
    """

    KIND: ClassVar[str] = "event"
    event_id: int
    kind: str
    phase: str
    time_ms: int
    score: int
    bbox: tuple[int, int, int, int] | None = None
    zone: str | None = None
    count: int | None = None
    has_snapshot: bool = False
    duration_s: int | None = None
    clock_unsynced: bool = False
    seq: int | None = None  # "q": the device's outbox number, echoed in the hub's receipt
    zones: tuple[str, ...] | None = None  # "zn": zones the visit has entered so far, in order
    loiter_s: int | None = None  # "lo": seconds a person has stayed in a loitering zone, once past its limit
    no_alert: bool = False  # "na": the device's zone rules say this phase calls for no alert
    profile: str | None = None  # "pf": the profile (day, night) whose rules judged it
    version: int = limits.SCHEMA_VERSION

    def to_wire(self) -> dict[str, Any]:
        return _drop_none(
            {
                "v": self.version,
                "id": self.event_id,
                "k": self.kind,
                "p": self.phase,
                "t": self.time_ms,
                "s": self.score,
                "b": list(self.bbox) if self.bbox is not None else None,
                "z": self.zone,
                "n": self.count,
                "sn": 1 if self.has_snapshot else None,
                "du": self.duration_s,
                "u": 1 if self.clock_unsynced else None,
                "q": self.seq,
                "zn": list(self.zones) if self.zones else None,
                "lo": self.loiter_s,
                "na": 1 if self.no_alert else None,
                "pf": self.profile,
            }
        )

    @property
    def alertable(self) -> bool:
        """Whether the device's rules let this phase alert (an old device sends no rules: always)."""
        return not self.no_alert

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Event:
        return cls(
            version=_version(obj),
            event_id=req_int(obj, "id", 0, EVENT_ID_MAX),
            kind=req_enum(obj, "k", EVENT_KINDS),
            phase=req_enum(obj, "p", EVENT_PHASES),
            time_ms=req_int(obj, "t", *T_RANGE),
            score=req_int(obj, "s", 0, 100),
            bbox=opt_box(obj, "b"),
            zone=opt_str(obj, "z", limits.MAX_ZONE_LEN),
            count=opt_int(obj, "n", 0, 100),
            has_snapshot=bool(opt_bool(obj, "sn")),
            duration_s=opt_int(obj, "du", 0, 7 * 24 * 3600),
            clock_unsynced=bool(opt_bool(obj, "u")),
            seq=opt_int(obj, "q", 1, SEQ_MAX),
            zones=opt_names(obj, "zn", limits.MAX_ZONES, limits.MAX_ZONE_LEN) or None,
            loiter_s=opt_int(obj, "lo", 0, 7 * 24 * 3600),
            no_alert=bool(opt_bool(obj, "na")),
            profile=opt_str(obj, "pf", limits.MAX_PROFILE_LEN, pattern=PROFILE_NAME),
        )


@dataclass(frozen=True, slots=True)
class Health:
    """The device's heartbeat. Everything but time is optional: a device
    reports what it can measure (a laptop test rig has no vcgencmd)."""

    KIND: ClassVar[str] = "health"
    time_ms: int
    uptime_s: int | None = None
    agent_version: str | None = None
    boot: int | None = None
    interval_s: int | None = None
    cpu_temp_c: float | None = None
    throttled: int | None = None  # vcgencmd get_throttled bit field
    load1: float | None = None
    mem_avail_mb: int | None = None
    mem_total_mb: int | None = None
    disk_free_mb: int | None = None
    camera: str | None = None
    camera_fps: float | None = None
    motion_fps: float | None = None
    inference_ms_p50: float | None = None
    outbox_depth: int | None = None
    outbox_dropped: int | None = None
    armed: bool | None = None
    rssi_dbm: int | None = None
    clock: str | None = None
    error: str | None = None
    update_version: str | None = None  # "uv": the release the updater works on
    update_state: str | None = None  # "us": one of UPDATE_STATES
    update_error: str | None = None  # "ue": why "fail" or "rb"
    update_bytes: int | None = None  # "ub": bytes of the release downloaded so far
    update_rollout: str | None = None  # "ro": the rollout the state belongs to
    clips: int | None = None  # "cl": clips stored on the device (docs/clips.md)
    clip_bytes: int | None = None  # "clb": their bytes (MB would hide small clips)
    clip_upload_bytes: int | None = None  # "clu": clip bytes uploaded today
    delta: bool | None = None  # "d": only what changed since the last report; absent keys are unchanged
    profile: str | None = None  # "pf": the vision profile in force (day, night)
    config_rev: int | None = None  # "cfg": revision of the last `config` push applied (0: the file's own)
    version: int = limits.SCHEMA_VERSION

    # Bits of `vcgencmd get_throttled` that operators act on.
    UNDER_VOLTAGE: ClassVar[int] = 1 << 0
    FREQ_CAPPED: ClassVar[int] = 1 << 1
    THROTTLED: ClassVar[int] = 1 << 2
    SOFT_TEMP_LIMIT: ClassVar[int] = 1 << 3
    UNDER_VOLTAGE_SINCE_BOOT: ClassVar[int] = 1 << 16

    def to_wire(self) -> dict[str, Any]:
        def r1(x: float | None) -> float | None:
            return None if x is None else round(x, 1)

        return _drop_none(
            {
                "v": self.version,
                "t": self.time_ms,
                "d": 1 if self.delta else None,
                "up": self.uptime_s,
                "ver": self.agent_version,
                "boot": self.boot,
                "hi": self.interval_s,
                "temp": r1(self.cpu_temp_c),
                "thr": self.throttled,
                "load": None if self.load1 is None else round(self.load1, 2),
                "mem": self.mem_avail_mb,
                "memt": self.mem_total_mb,
                "disk": self.disk_free_mb,
                "cam": self.camera,
                "fps": r1(self.camera_fps),
                "mfps": r1(self.motion_fps),
                "inf": r1(self.inference_ms_p50),
                "ob": self.outbox_depth,
                "obd": self.outbox_dropped,
                "arm": None if self.armed is None else int(self.armed),
                "rssi": self.rssi_dbm,
                "clk": self.clock,
                "err": self.error,
                "uv": self.update_version,
                "us": self.update_state,
                "ue": self.update_error,
                "ub": self.update_bytes,
                "ro": self.update_rollout,
                "cl": self.clips,
                "clb": self.clip_bytes,
                "clu": self.clip_upload_bytes,
                "pf": self.profile,
                "cfg": self.config_rev,
            }
        )

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Health:
        camera = opt_str(obj, "cam", 16)
        if camera is not None and camera not in CAMERA_STATES:
            raise ProtocolError("bad_field", f"field 'cam'={camera!r} is not a camera state")
        clock = opt_str(obj, "clk", 16)
        if clock is not None and clock not in CLOCK_STATES:
            raise ProtocolError("bad_field", f"field 'clk'={clock!r} is not a clock state")
        update_state = opt_str(obj, "us", 16)
        if update_state is not None and update_state not in UPDATE_STATES:
            raise ProtocolError("bad_field", f"field 'us'={update_state!r} is not an update state")
        big = 1 << 40
        return cls(
            version=_version(obj),
            time_ms=req_int(obj, "t", *T_RANGE),
            uptime_s=opt_int(obj, "up", 0, big),
            agent_version=opt_str(obj, "ver", 32),
            boot=opt_int(obj, "boot", 0, big),
            interval_s=opt_int(obj, "hi", 1, 86_400),
            cpu_temp_c=opt_float(obj, "temp", -60.0, 150.0),
            throttled=opt_int(obj, "thr", 0, 0xFFFFFFFF),
            load1=opt_float(obj, "load", 0.0, 10_000.0),
            mem_avail_mb=opt_int(obj, "mem", 0, big),
            mem_total_mb=opt_int(obj, "memt", 0, big),
            disk_free_mb=opt_int(obj, "disk", 0, big),
            camera=camera,
            camera_fps=opt_float(obj, "fps", 0.0, 1000.0),
            motion_fps=opt_float(obj, "mfps", 0.0, 1000.0),
            inference_ms_p50=opt_float(obj, "inf", 0.0, 600_000.0),
            outbox_depth=opt_int(obj, "ob", 0, big),
            outbox_dropped=opt_int(obj, "obd", 0, big),
            armed=opt_bool(obj, "arm"),
            rssi_dbm=opt_int(obj, "rssi", -150, 0),
            clock=clock,
            error=opt_str(obj, "err", limits.MAX_ERROR_LEN),
            update_version=opt_str(obj, "uv", MAX_VERSION_LEN, pattern=VERSION_TEXT),
            update_state=update_state,
            update_error=opt_str(obj, "ue", MAX_UPDATE_ERROR_LEN),
            update_bytes=opt_int(obj, "ub", 0, big),
            update_rollout=opt_str(obj, "ro", limits.MAX_ID_LEN, pattern=_TOKEN),
            clips=opt_int(obj, "cl", 0, big),
            clip_bytes=opt_int(obj, "clb", 0, big),
            clip_upload_bytes=opt_int(obj, "clu", 0, big),
            delta=opt_bool(obj, "d") or None,
            profile=opt_str(obj, "pf", limits.MAX_PROFILE_LEN, pattern=PROFILE_NAME),
            config_rev=opt_int(obj, "cfg", 0, MAX_CONFIG_REV),
        )


@dataclass(frozen=True, slots=True)
class State:
    """Retained presence. The MQTT will is the short ``{"v":1,"st":"offline"}``."""

    KIND: ClassVar[str] = "state"
    state: str
    time_ms: int | None = None
    agent_version: str | None = None
    boot: int | None = None
    interval_s: int | None = None  # the heartbeat interval the hub should expect
    version: int = limits.SCHEMA_VERSION

    def to_wire(self) -> dict[str, Any]:
        return _drop_none(
            {
                "v": self.version,
                "st": self.state,
                "t": self.time_ms,
                "ver": self.agent_version,
                "boot": self.boot,
                "hi": self.interval_s,
            }
        )

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> State:
        return cls(
            version=_version(obj),
            state=req_enum(obj, "st", DEVICE_STATES),
            time_ms=opt_int(obj, "t", *T_RANGE),
            agent_version=opt_str(obj, "ver", 32),
            boot=opt_int(obj, "boot", 0, 1 << 40),
            interval_s=opt_int(obj, "hi", 1, 86_400),
        )


@dataclass(frozen=True, slots=True)
class Command:
    """Hub → device. ``args`` depend on ``op`` and are validated here, so the
    agent only ever sees well-formed commands."""

    KIND: ClassVar[str] = "cmd"
    command_id: str
    op: str
    args: dict[str, Any] = field(default_factory=dict)
    time_ms: int | None = None
    expires_ms: int | None = None  # "x": hub time after which a device whose clock is synced must not act
    version: int = limits.SCHEMA_VERSION

    def __post_init__(self) -> None:
        _check_command_args(self.op, self.args)

    def to_wire(self) -> dict[str, Any]:
        return _drop_none(
            {
                "v": self.version,
                "id": self.command_id,
                "op": self.op,
                "a": self.args or None,
                "t": self.time_ms,
                "x": self.expires_ms,
            }
        )

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Command:
        return cls(
            version=_version(obj),
            command_id=req_str(obj, "id", limits.MAX_ID_LEN, pattern=_TOKEN),
            op=req_enum(obj, "op", COMMAND_OPS),
            args=opt_object(obj, "a") or {},
            time_ms=opt_int(obj, "t", *T_RANGE),
            expires_ms=opt_int(obj, "x", *T_RANGE),
        )


def _check_command_args(op: str, args: dict[str, Any]) -> None:
    if op not in COMMAND_OPS:
        raise ProtocolError("bad_field", f"unknown command op {op!r}")
    allowed = {
        "schedule": {"from", "to"},
        "identify": {"s"},
        "snapshot": {"w"},
        "update": {"ver", "ro", "dg", "f"},
        "clip": {"id"},
        "clips": {"auto", "daily"},
        "config": {"rev", "vision"},
        "alert": {"id", "k", "hh", "msg", "s"},
    }.get(op, set())
    extra = set(args) - allowed
    if extra:
        raise ProtocolError("bad_field", f"command {op!r} takes no argument {sorted(extra)[0]!r}")
    if op == "schedule":
        req_str(args, "from", 5, pattern=_HHMM)
        req_str(args, "to", 5, pattern=_HHMM)
    elif op == "identify":
        opt_int(args, "s", 1, 300)
    elif op == "snapshot":
        opt_int(args, "w", 64, 1920)
    elif op == "update":
        req_str(args, "ver", MAX_VERSION_LEN, pattern=VERSION_TEXT)
        opt_str(args, "ro", limits.MAX_ID_LEN, pattern=_TOKEN)
        opt_bool(args, "dg")
        opt_bool(args, "f")
    elif op == "clip":
        req_int(args, "id", 0, EVENT_ID_MAX)
    elif op == "clips":
        _check_clip_policy(args)
    elif op == "alert":
        # Issue 21: an escalated alert for a 治安户长's own device, outside the alert's group.
        req_str(args, "id", limits.MAX_ID_LEN, pattern=_TOKEN)
        req_enum(args, "k", ALERT_KINDS)
        req_str(args, "hh", limits.MAX_TEXT_LEN)
        opt_str(args, "msg", limits.MAX_TEXT_LEN)
        opt_int(args, "s", 2, 4)
    elif op == "config":
        # The wire checks the envelope; the device validates the section itself against its
        # config schema (agent.config_vision), and refuses it with the reason in its ack.
        req_int(args, "rev", 1, MAX_CONFIG_REV)
        if not isinstance(args.get("vision"), dict):
            raise ProtocolError("bad_field", "field 'vision' must be an object (the agent's vision: section)")


def _check_clip_policy(args: dict[str, Any]) -> None:
    auto = args.get("auto")
    if not isinstance(auto, list) or len(auto) > len(CLIP_AUTO):
        raise ProtocolError("bad_field", "field 'auto' must be a list of clip kinds")
    for kind in auto:
        if not isinstance(kind, str) or kind not in CLIP_AUTO:
            raise ProtocolError("bad_field", f"field 'auto' has {kind!r}, not one of {sorted(CLIP_AUTO)}")
    req_int(args, "daily", 0, MAX_CLIP_DAILY_BYTES)


@dataclass(frozen=True, slots=True)
class Ack:
    """Device → hub: the answer to a command, or a household acknowledging an alert."""

    KIND: ClassVar[str] = "ack"
    of: str  # "cmd" or "alert"
    ref_id: str  # the command or alert id
    ok: bool
    time_ms: int
    error: str | None = None
    seq: int | None = None  # "q", as in Event
    version: int = limits.SCHEMA_VERSION

    def to_wire(self) -> dict[str, Any]:
        return _drop_none(
            {
                "v": self.version,
                "re": self.of,
                "id": self.ref_id,
                "ok": int(self.ok),
                "t": self.time_ms,
                "err": self.error,
                "q": self.seq,
            }
        )

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Ack:
        ok = opt_bool(obj, "ok", required=True)
        return cls(
            version=_version(obj),
            of=req_enum(obj, "re", ACK_OF),
            ref_id=req_str(obj, "id", limits.MAX_ID_LEN, pattern=_TOKEN),
            ok=bool(ok),
            time_ms=req_int(obj, "t", *T_RANGE),
            error=opt_str(obj, "err", limits.MAX_ERROR_LEN),
            seq=opt_int(obj, "q", 1, SEQ_MAX),
        )


@dataclass(frozen=True, slots=True)
class Alert:
    """Hub → a 联防组 (group): raise or clear a joint-defence alert."""

    KIND: ClassVar[str] = "alert"
    alert_id: str
    phase: str
    kind: str
    origin: str  # device ID of the household that triggered it
    household: str
    time_ms: int
    text: str | None = None  # short label for a display, e.g. the household name
    delay_s: int | None = None  # "dl": the event reached the hub this late (a panic held back by an outage)
    version: int = limits.SCHEMA_VERSION

    def to_wire(self) -> dict[str, Any]:
        return _drop_none(
            {
                "v": self.version,
                "id": self.alert_id,
                "ph": self.phase,
                "k": self.kind,
                "o": self.origin,
                "hh": self.household,
                "t": self.time_ms,
                "msg": self.text,
                "dl": self.delay_s,
            }
        )

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Alert:
        origin = req_str(obj, "o", 20, pattern=_DEVICE)
        assert is_device_id(origin)
        return cls(
            version=_version(obj),
            alert_id=req_str(obj, "id", limits.MAX_ID_LEN, pattern=_TOKEN),
            phase=req_enum(obj, "ph", ALERT_PHASES),
            kind=req_enum(obj, "k", ALERT_KINDS),
            origin=origin,
            household=req_str(obj, "hh", limits.MAX_TEXT_LEN),
            time_ms=req_int(obj, "t", *T_RANGE),
            text=opt_str(obj, "msg", limits.MAX_TEXT_LEN),
            delay_s=opt_int(obj, "dl", 0, 10 * 365 * 86_400),
        )


JsonMessage = Event | Health | State | Command | Ack | Alert

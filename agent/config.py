"""The agent's YAML config, validated once at start.

Every problem names its dotted key, the value found and what was expected, and
all problems are reported together: an installer at a doorstep fixes the file
once instead of once per run. Certificate files are checked in agent.certs.

Each section is a frozen dataclass whose ``Annotated`` fields are its schema
(see xlconfig); the default on a field is the only one, and the commented
example configs are generated from these classes (agent/config_example.py).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from annotated_types import Interval

from agent.config_vision import VisionConfig, VisionFile
from agent.household_sim import SimulateConfig
from protocol.ids import parse_device_id, parse_group_id
from xlconfig import (
    SECTION,
    AfterValidator,
    Bool,
    ConfigError,
    Expect,
    Field,
    Float,
    Int,
    NonEmptyPath,
    Str,
    problem,
    read_yaml,
    validate,
)

__all__ = ["AgentConfig", "ConfigError", "load", "load_isolated", "parse"]  # and the sections below

DEFAULT_PATH = Path("/etc/xueliang/agent.yaml")
DEFAULT_STATE_DIR = Path("/var/lib/xueliang")
DEFAULT_UPDATE_ROOT = Path("/opt/xueliang")
DEFAULT_UPDATE_STATE_DIR = Path("/var/lib/xueliang/update")
PIN_FACTORIES = ("lgpio", "rpigpio", "pigpio", "native", "mock")


def _device_id(text: str) -> str:
    return str(parse_device_id(text))


def _mqtts(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port or 8883
    except ValueError:
        port = 0
    if parts.scheme != "mqtts" or not parts.hostname or not 0 < port < 65536 or parts.path not in ("", "/"):
        raise ValueError("not an mqtts:// URL")
    return url


def _source(text: str) -> str:
    if text == "picamera2" or (text.startswith("synthetic:") and len(text) > len("synthetic:")):
        return text
    if "/" in text or "." in text:  # a file path
        return text
    raise ValueError("not a camera source")


def _hhmm(text: str) -> str:
    h, _, m = text.partition(":")
    if not (len(h) == len(m) == 2 and h.isdigit() and m.isdigit() and int(h) < 24 and int(m) < 60):
        raise ValueError("not HH:MM")
    return text


def _tuf_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    try:
        port = parts.port or 443
    except ValueError:
        port = 0
    if parts.scheme != "https" or not parts.hostname or not 0 < port < 65536 or parts.query or parts.fragment:
        raise ValueError("not an https:// URL")
    return url if url.endswith("/") else url + "/"


def _timezone(name: str) -> str:
    from agent.schedule import zone  # its fallback for a Pi without tzdata is the one to agree with

    zone(name)  # ValueError when unknown
    return name


_PIN = Interval(ge=0, le=27)
_PIN_EXPECT = Expect("a BCM pin number 0..27")


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    id: Annotated[
        Str,
        AfterValidator(_device_id),
        Expect("a 20-digit device ID (GB/T 28181), quoted"),
        Field(
            description="20-digit national device code; the certificate's CN (quoted: YAML would read it as a number)."
        ),
    ]
    group: Annotated[
        Str,
        AfterValidator(parse_group_id),
        Expect("a group id of [A-Za-z0-9_-], 1-32 chars"),
        Field(description="联防组: the households this one alerts and is alerted by."),
    ]
    household: Annotated[
        Str,
        Field(min_length=1, max_length=64, description="Household id from the county register."),
        Expect("a household id, 1-64 chars"),
    ]


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    url: Annotated[
        Str,
        AfterValidator(_mqtts),
        Expect("mqtts://host:port (TLS only; the device never talks to the hub in clear)"),
        Field(description="The county broker. TLS only; the username and client id come from the certificate."),
    ]
    ca: Annotated[NonEmptyPath, Field(description="The county CA certificate.")]
    cert: Annotated[
        NonEmptyPath, Field(description="This device's client certificate (its expiry is checked at start).")
    ]
    key: Annotated[NonEmptyPath, Field(description="This device's private key: mode 0600, or the agent refuses it.")]
    keepalive: Annotated[
        Int,
        Field(
            ge=10,
            le=1200,
            description="Seconds, in armed hours; the broker declares a silent device "
            "offline 1.5x this after its last packet (Mosquitto checks every ~6 s): 75-82 s, under the 90 s target.",
        ),
    ] = 50
    keepalive_idle: Annotated[
        Int,
        Field(
            ge=10,
            le=1200,
            description="Seconds, outside armed hours: fewer pings on a metered card. "
            "Keep it under the carrier's NAT idle timeout (often 5 minutes).",
        ),
    ] = 240
    tls_version: Annotated[
        Literal["1.2", "1.3"],
        Field(
            description="TLS version to the broker. 1.2 resumes with a reusable ticket (a reconnect ~1.2 KB "
            "of TLS); Mosquitto's 1.3 sends a fresh 750-byte ticket every time (~2.3 KB)."
        ),
    ] = "1.2"
    max_inflight: Annotated[
        Int, Field(ge=1, le=100, description="Unacknowledged QoS 1 messages at once (bounds data on a slow link).")
    ] = 10
    session_expiry: Annotated[
        Int,
        Field(
            ge=0,
            le=30 * 86_400,
            description="Seconds the broker keeps commands and alerts queued while the device is offline.",
        ),
    ] = 86_400
    backoff_base_s: Annotated[
        Float, Field(ge=0.01, le=60, description="Reconnect delay: random in [0, min(cap, base*2^n)] seconds.")
    ] = 1.0
    backoff_cap_s: Annotated[
        Float,
        Field(ge=0.1, le=3600, description="Seconds; also how late a disconnected device hears its group's alerts."),
    ] = 60.0

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 8883


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    path: Annotated[
        NonEmptyPath | None,
        Field(description="Events wait here until the hub has them (unset: outbox.sqlite3 in state_dir)."),
    ] = None
    max_rows: Annotated[
        Int, Field(ge=10, le=10_000_000, description="When full: motion is dropped before person; panic never.")
    ] = 20_000
    max_bytes: Annotated[Int, Field(ge=64 * 1024, le=1 << 40, description="Bytes of the SD card at most (64 MB).")] = (
        64 * 1024 * 1024
    )


@dataclass(frozen=True, slots=True)
class HealthSection:
    interval_s: Annotated[
        Int,
        Field(
            ge=5,
            le=86_400,
            description="Seconds between full health reports (changes go at once, as deltas). "
            "Liveness is the keepalive's job; the hub also marks a device offline after 3x this of silence.",
        ),
    ] = 1800


@dataclass(frozen=True, slots=True)
class CameraConfig:
    source: Annotated[
        Str,
        AfterValidator(_source),
        Expect("picamera2, synthetic:<scene> or a file path"),
        Field(description="picamera2, synthetic:<scene>[?opts] (demo and tests) or a video file."),
    ] = "picamera2"
    width: Annotated[Int, Field(ge=64, le=4096, description="Main stream (detection, snapshots), pixels.")] = 1280
    height: Annotated[Int, Field(ge=48, le=4096, description="Pixels.")] = 720
    fps: Annotated[Float, Field(ge=0.5, le=60, description="Frames per second.")] = 10.0
    lores_width: Annotated[Int, Field(ge=32, le=1280, description="Motion stream, pixels.")] = 320
    lores_height: Annotated[Int, Field(ge=24, le=960, description="Pixels.")] = 180


@dataclass(frozen=True, slots=True)
class ClipsConfig:
    """Event clips (docs/clips.md): a ring of encoded video on the SD card, one MP4 per visit."""

    enabled: Annotated[
        Bool, Field(description="Record a ring of video and keep a clip of each event; nothing leaves the device.")
    ] = True
    width: Annotated[Int, Field(ge=64, le=1920, description="Clip pixels (downscaled from the main stream).")] = 640
    height: Annotated[Int, Field(ge=48, le=1080, description="Pixels.")] = 360
    fps: Annotated[Float, Field(ge=0.5, le=30, description="Frames per second kept in clips.")] = 5.0
    segment_s: Annotated[
        Float, Field(ge=0.5, le=10, description="Seconds per ring segment; clips are cut at segment boundaries.")
    ] = 4.0
    ring_s: Annotated[
        Float, Field(ge=4, le=600, description="Seconds of video the ring keeps: at least pre_s plus a segment.")
    ] = 30.0
    pre_s: Annotated[Float, Field(ge=0, le=60, description="Seconds of video before a visit starts.")] = 5.0
    post_s: Annotated[Float, Field(ge=0, le=60, description="Seconds of video after a visit ends.")] = 5.0
    max_bytes: Annotated[
        Int,
        Field(
            ge=16 * 1024 * 1024,
            le=1 << 40,
            description="Bytes of clips on the SD card at most (2 GB); alert clips are dropped last.",
        ),
    ] = 2 * 1024 * 1024 * 1024
    upload_bytes_per_s: Annotated[
        Int,
        Expect("bytes per second, 1024..1073741824"),  # not seconds, which the _s suffix would say
        Field(ge=1024, le=1 << 30, description="Clip upload cap on the metered link, bytes/s."),
    ] = 65_536
    daily_upload_bytes: Annotated[
        Int, Field(ge=0, le=1 << 40, description="Clip bytes uploaded per day at most (the hub's policy may lower it).")
    ] = 20 * 1000 * 1000
    encoder: Annotated[
        Literal["auto", "hardware", "software"],
        Field(
            description="H.264 encoder: auto = picamera2's hardware encoder on a Pi that has one (3/4/Zero 2 W), "
            "else libx264; hardware = that or refuse to start; software = libx264 always."
        ),
    ] = "auto"


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    armed_from: Annotated[
        Str,
        AfterValidator(_hhmm),
        Expect('"HH:MM" (local time)'),
        Field(
            alias="from",
            description="Armed hours start, local time; from > to spans midnight. The hub can change them.",
        ),
    ] = "21:00"
    armed_to: Annotated[
        Str, AfterValidator(_hhmm), Expect('"HH:MM" (local time)'), Field(alias="to", description="Armed hours end.")
    ] = "06:00"
    timezone: Annotated[
        Str,
        AfterValidator(_timezone),
        Expect("an IANA zone such as Asia/Shanghai"),
        Field(description="IANA time zone of the armed hours."),
    ] = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class GpioConfig:
    pir: Annotated[
        Int | None, _PIN, _PIN_EXPECT, Field(description="PIR sensor (BCM pin): triggers detection, corroborates it.")
    ] = None
    led: Annotated[Int | None, _PIN, _PIN_EXPECT, Field(description="Status LED.")] = None
    buzzer: Annotated[Int | None, _PIN, _PIN_EXPECT, Field(description="Buzzer for 十户联防 alerts.")] = None
    button: Annotated[
        Int | None,
        _PIN,
        _PIN_EXPECT,
        Field(description="Household button (to ground): press = acknowledge, hold = panic."),
    ] = None
    pin_factory: Annotated[
        Literal["lgpio", "rpigpio", "pigpio", "native", "mock"] | None,
        Field(description="gpiozero pin factory; unset: gpiozero's own choice."),
    ] = None
    hold_s: Annotated[Float, Field(ge=0.1, le=30, description="Seconds; a press this long is a panic.")] = 2.0
    buzzer_max_s: Annotated[
        Float, Field(ge=1, le=86_400, description="Seconds; the buzzer stops after this, the LED keeps alerting.")
    ] = 600.0

    @property
    def any(self) -> bool:
        return any(p is not None for p in (self.pir, self.led, self.buzzer, self.button))


@dataclass(frozen=True, slots=True)
class UpdateConfig:
    """Over-the-air updates (docs/ota.md): where releases live and when a new one counts as good."""

    url: Annotated[
        Str | None,
        AfterValidator(_tuf_url),
        Expect("https://host:port/tuf/ (the hub's update server)"),
        Field(description="The hub's TUF repository, over mTLS with the broker certificate (unset: no updates)."),
    ] = None
    root: Annotated[
        NonEmptyPath, Field(description="Releases side by side in releases/<version>/, the running one is `current`.")
    ] = DEFAULT_UPDATE_ROOT
    state_dir: Annotated[
        NonEmptyPath, Field(description="The updater's state.json, trusted TUF metadata and partial downloads.")
    ] = DEFAULT_UPDATE_STATE_DIR
    commit_within_s: Annotated[
        Int,
        Field(
            ge=60,
            le=86_400,
            description="Seconds a new release has to connect, read frames, load the model and run the pipeline; "
            "else it is rolled back.",
        ),
    ] = 600
    max_attempts: Annotated[
        Int,
        Field(ge=1, le=20, description="Starts of a new release without a commit before the guard rolls it back."),
    ] = 3
    bandwidth_bytes_per_s: Annotated[
        Int | None,
        Expect("bytes per second, 1024..1073741824"),  # not seconds, which the _s suffix would say
        Field(ge=1024, le=1 << 30, description="Download cap on the metered link, bytes/s (unset: no cap)."),
    ] = 131_072
    outside_armed_hours_only: Annotated[
        Bool, Field(description="Download and switch only outside armed hours, unless the hub forces it.")
    ] = True


@dataclass(frozen=True)
class AgentFile:
    """The file as written: the sections above, in the order the example config lists them."""

    device: Annotated[DeviceConfig, Field(description="Must match the certificate: re-provision, do not edit.")]
    broker: BrokerConfig
    outbox: Annotated[OutboxConfig, SECTION] = field(default_factory=OutboxConfig)
    health: Annotated[HealthSection, SECTION] = field(default_factory=HealthSection)
    camera: Annotated[CameraConfig, SECTION] = field(default_factory=CameraConfig)
    vision: Annotated[VisionFile, SECTION] = field(default_factory=VisionFile)
    clips: Annotated[ClipsConfig, SECTION] = field(default_factory=ClipsConfig)
    schedule: Annotated[ScheduleConfig, SECTION] = field(default_factory=ScheduleConfig)
    gpio: Annotated[GpioConfig, SECTION, Field(description="Leave a pin out if the part is not fitted.")] = field(
        default_factory=GpioConfig
    )
    state_dir: Annotated[NonEmptyPath, Field(description="Boot counter and arming state.")] = DEFAULT_STATE_DIR
    update: Annotated[UpdateConfig, SECTION] = field(default_factory=UpdateConfig)
    simulate: Annotated[
        SimulateConfig | None,
        Field(description="A simulated household: demo and tests only, with gpio.pin_factory: mock."),
    ] = None


@dataclass(frozen=True, slots=True)
class AgentConfig:
    device: DeviceConfig
    broker: BrokerConfig
    outbox: OutboxConfig
    camera: CameraConfig
    schedule: ScheduleConfig
    gpio: GpioConfig
    state_dir: Path
    health_interval_s: int
    vision: VisionConfig
    simulate: SimulateConfig | None = None  # demo/test only, mock pins
    update: UpdateConfig = field(default_factory=UpdateConfig)
    clips: ClipsConfig = field(default_factory=ClipsConfig)
    path: Path | None = None  # where it was read from, for `reload`
    # The file's ``vision:`` mapping as written: what a config push merges over (agent.config_push),
    # kept from this one read so the agent never reads the file a second time for it.
    vision_doc: dict[str, Any] = field(default_factory=dict, compare=False)  # as written, not what it means


def _cross_checks(f: AgentFile) -> list[str]:
    """Rules between keys, which no single field's schema can say."""
    problems = []
    seen: dict[int, str] = {}
    for name in ("pir", "led", "buzzer", "button"):
        number = getattr(f.gpio, name)
        if number is not None and number in seen:
            problems.append(problem(f"gpio.{name}", number, f"a pin not already used by gpio.{seen[number]}"))
        elif number is not None:
            seen[number] = name
    if f.simulate is not None and (f.gpio.pin_factory != "mock" or f.gpio.button is None):
        problems.append(
            problem(
                "simulate",
                dataclasses.asdict(f.simulate),
                "only with gpio.pin_factory: mock and a gpio.button (demo and tests)",
            )
        )
    c = f.clips
    if c.enabled and c.ring_s < c.pre_s + c.segment_s:
        # The pre-roll is cut from the ring: a shorter ring would silently lose it.
        problems.append(
            problem("clips.ring_s", c.ring_s, f"at least clips.pre_s + clips.segment_s ({c.pre_s + c.segment_s:g})")
        )
    return problems


def parse(doc: Any, source: str = "config") -> AgentConfig:
    """Validate a decoded YAML document; raise ConfigError listing every problem."""
    try:
        f = validate(AgentFile, doc)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None
    problems = _cross_checks(f)
    try:
        vision = f.vision.to_config()
    except ValueError as exc:  # MotionSettings' own invariants, should the schema ever allow more than they do
        problems.append(f"vision.motion: {exc}")
    if problems:
        raise ConfigError(problems, source)
    outbox = f.outbox if f.outbox.path else dataclasses.replace(f.outbox, path=f.state_dir / "outbox.sqlite3")
    return AgentConfig(
        device=f.device,
        broker=f.broker,
        outbox=outbox,
        camera=f.camera,
        schedule=f.schedule,
        gpio=f.gpio,
        state_dir=f.state_dir,
        health_interval_s=f.health.interval_s,
        vision=vision,
        simulate=f.simulate,
        update=f.update,
        clips=f.clips,
        vision_doc=dict(doc["vision"]) if isinstance(doc.get("vision"), dict) else {},
    )


def load(path: Path = DEFAULT_PATH) -> AgentConfig:
    """Read and validate the config file; ConfigError for anything wrong."""
    return dataclasses.replace(read_yaml(path, parse), path=path)


def load_isolated(path: Path = DEFAULT_PATH) -> AgentConfig:
    """``load`` in a child process, for ``xl-agent run``: the process that runs for years never imports
    pydantic (xlconfig.isolated). The same ConfigError; RuntimeError if the child cannot run."""
    from agent.watchdog import child_env
    from xlconfig.isolated import call

    config: AgentConfig = call("agent.config:load", path, env=child_env())
    return config

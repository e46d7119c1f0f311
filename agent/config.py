"""The agent's YAML config, validated once at start.

Every problem names its dotted key, the value found and what was expected, and
all problems are reported together: an installer at a doorstep fixes the file
once instead of once per run. Certificate files are checked in agent.certs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml

from protocol.errors import ProtocolError
from protocol.ids import parse_device_id, parse_group_id

DEFAULT_PATH = Path("/etc/xueliang/agent.yaml")
DEFAULT_STATE_DIR = Path("/var/lib/xueliang")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
PIN_FACTORIES = ("lgpio", "rpigpio", "pigpio", "native", "mock")
T = TypeVar("T")


class ConfigError(ValueError):
    def __init__(self, problems: list[str], source: str = "config") -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class DeviceConfig:
    id: str
    group: str
    household: str


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    host: str
    port: int
    ca: Path
    cert: Path
    key: Path
    keepalive: int = 45  # the broker declares a silent device dead after 1.5x: ~68 s, under the 90 s target
    max_inflight: int = 10
    session_expiry: int = 86_400
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0  # also how late a disconnected device hears its group's alerts


@dataclass(frozen=True, slots=True)
class OutboxConfig:
    path: Path
    max_rows: int = 20_000
    max_bytes: int = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CameraConfig:
    source: str = "picamera2"  # picamera2 | synthetic:<scene>[?opts] | a file path
    width: int = 1280
    height: int = 720
    fps: float = 10.0
    lores_width: int = 320
    lores_height: int = 180


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    armed_from: str = "21:00"
    armed_to: str = "06:00"
    timezone: str = "Asia/Shanghai"


@dataclass(frozen=True, slots=True)
class GpioConfig:
    pir: int | None = None
    led: int | None = None
    buzzer: int | None = None
    button: int | None = None
    pin_factory: str | None = None  # None: gpiozero's own choice
    hold_s: float = 2.0  # a press this long is a panic
    buzzer_max_s: float = 600.0  # stop the noise after this; the LED keeps alerting

    @property
    def any(self) -> bool:
        return any(p is not None for p in (self.pir, self.led, self.buzzer, self.button))


@dataclass(frozen=True, slots=True)
class AgentConfig:
    device: DeviceConfig
    broker: BrokerConfig
    outbox: OutboxConfig
    camera: CameraConfig
    schedule: ScheduleConfig
    gpio: GpioConfig
    state_dir: Path
    health_interval_s: int = 60
    vision: Any = None  # agent.config_vision.VisionConfig, the vision engineer's section
    simulate: Any = None  # agent.household_sim.SimulateConfig: demo/test only, mock pins
    path: Path | None = None  # where it was read from, for `reload`


class _Reader:
    """Collects problems instead of stopping at the first one."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, key: str, value: object, expected: str) -> None:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        self.problems.append(f"{key}: found {shown}, expected {expected}")

    def section(self, doc: Mapping[str, Any], key: str, known: set[str]) -> dict[str, Any]:
        value = doc.get(key, {})
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.fail(key, value, "a mapping")
            return {}
        for extra in sorted(set(value) - known):
            self.fail(f"{key}.{extra}", value[extra], f"one of the known keys ({', '.join(sorted(known))})")
        return value

    def get(
        self,
        sec: Mapping[str, Any],
        path: str,
        kind: Callable[[Any], T | None],
        expected: str,
        default: T | None = None,
        required: bool = False,
    ) -> T | None:
        name = path.rsplit(".", 1)[-1]
        if name not in sec or sec[name] is None:
            if required:
                self.fail(path, None, f"{expected} (required)")
            return default
        raw = sec[name]
        try:
            value = kind(raw)
        except (TypeError, ValueError, ProtocolError):
            value = None
        if value is None:
            self.fail(path, raw, expected)
            return default
        return value


def _int_in(lo: int, hi: int) -> Callable[[Any], int | None]:
    def check(v: Any) -> int | None:
        return v if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi else None

    return check


def _float_in(lo: float, hi: float) -> Callable[[Any], float | None]:
    def check(v: Any) -> float | None:
        ok = isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi
        return float(v) if ok else None

    return check


def _text(max_len: int) -> Callable[[Any], str | None]:
    return lambda v: v if isinstance(v, str) and 0 < len(v) <= max_len else None


def _path(v: Any) -> Path | None:
    return Path(v) if isinstance(v, str) and v else None


def _hhmm(v: Any) -> str | None:
    return v if isinstance(v, str) and _HHMM.fullmatch(v) else None


def _device_id(v: Any) -> str | None:
    return str(parse_device_id(v))


def _group(v: Any) -> str | None:
    return parse_group_id(v)


def _broker_url(r: _Reader, sec: Mapping[str, Any]) -> tuple[str, int]:
    url = sec.get("url")
    if not isinstance(url, str):
        r.fail("broker.url", url, "mqtts://host:port (required)")
        return "", 0
    parts = urlsplit(url)
    try:
        port = parts.port or 8883
    except ValueError:
        port = 0
    if parts.scheme != "mqtts" or not parts.hostname or not 0 < port < 65536 or parts.path not in ("", "/"):
        r.fail("broker.url", url, "mqtts://host:port (TLS only; the device never talks to the hub in clear)")
        return "", 0
    return parts.hostname, port


def _source(v: Any) -> str | None:
    if not isinstance(v, str) or not v:
        return None
    if v == "picamera2" or (v.startswith("synthetic:") and len(v) > len("synthetic:")):
        return v
    return v if "/" in v or "." in v else None  # a file path


def parse(doc: Any, source: str = "config") -> AgentConfig:
    """Validate a decoded YAML document; raise ConfigError listing every problem."""
    r = _Reader()
    if not isinstance(doc, dict):
        raise ConfigError([f"(top level): found {type(doc).__name__}, expected a mapping"], source)
    top = {"device", "broker", "outbox", "health", "camera", "vision", "schedule", "gpio", "state_dir", "simulate"}
    for extra in sorted(set(doc) - top):
        r.fail(extra, doc[extra], f"one of the known sections ({', '.join(sorted(top))})")

    state_dir = r.get(doc, "state_dir", _path, "a directory path", DEFAULT_STATE_DIR) or DEFAULT_STATE_DIR

    d = r.section(doc, "device", {"id", "group", "household"})
    device = DeviceConfig(
        id=r.get(d, "device.id", _device_id, "a 20-digit device ID (GB/T 28181)", "", required=True) or "",
        group=r.get(d, "device.group", _group, "a group id of [A-Za-z0-9_-], 1-32 chars", "", required=True)
        or "",
        household=r.get(d, "device.household", _text(64), "a household id, 1-64 chars", "", required=True)
        or "",
    )

    b = r.section(
        doc,
        "broker",
        {
            "url",
            "ca",
            "cert",
            "key",
            "keepalive",
            "max_inflight",
            "session_expiry",
            "backoff_base_s",
            "backoff_cap_s",
        },
    )
    host, port = _broker_url(r, b)
    broker = BrokerConfig(
        host=host,
        port=port,
        ca=r.get(b, "broker.ca", _path, "the county CA certificate path", Path(), required=True) or Path(),
        cert=r.get(b, "broker.cert", _path, "the device certificate path", Path(), required=True) or Path(),
        key=r.get(b, "broker.key", _path, "the device private key path", Path(), required=True) or Path(),
        keepalive=r.get(b, "broker.keepalive", _int_in(10, 1200), "seconds, 10..1200", 45) or 45,
        max_inflight=r.get(b, "broker.max_inflight", _int_in(1, 100), "an integer 1..100", 10) or 10,
        session_expiry=r.get(
            b, "broker.session_expiry", _int_in(0, 30 * 86_400), "seconds, 0..2592000", 86_400
        )
        or 0,
        backoff_base_s=r.get(b, "broker.backoff_base_s", _float_in(0.01, 60), "seconds, 0.01..60", 1.0)
        or 1.0,
        backoff_cap_s=r.get(b, "broker.backoff_cap_s", _float_in(0.1, 3600), "seconds, 0.1..3600", 60.0)
        or 60.0,
    )

    o = r.section(doc, "outbox", {"path", "max_rows", "max_bytes"})
    outbox = OutboxConfig(
        path=r.get(o, "outbox.path", _path, "a file path", state_dir / "outbox.sqlite3")
        or state_dir / "outbox.sqlite3",
        max_rows=r.get(o, "outbox.max_rows", _int_in(10, 10_000_000), "an integer 10..10000000", 20_000)
        or 20_000,
        max_bytes=r.get(o, "outbox.max_bytes", _int_in(64 * 1024, 1 << 40), "bytes, at least 65536", 64 << 20)
        or 64 << 20,
    )

    h = r.section(doc, "health", {"interval_s"})
    interval = r.get(h, "health.interval_s", _int_in(5, 3600), "seconds, 5..3600", 60) or 60

    c = r.section(doc, "camera", {"source", "width", "height", "fps", "lores_width", "lores_height"})
    camera = CameraConfig(
        source=r.get(c, "camera.source", _source, "picamera2, synthetic:<scene> or a file path", "picamera2")
        or "picamera2",
        width=r.get(c, "camera.width", _int_in(64, 4096), "pixels, 64..4096", 1280) or 1280,
        height=r.get(c, "camera.height", _int_in(48, 4096), "pixels, 48..4096", 720) or 720,
        fps=r.get(c, "camera.fps", _float_in(0.5, 60), "frames per second, 0.5..60", 10.0) or 10.0,
        lores_width=r.get(c, "camera.lores_width", _int_in(32, 1280), "pixels, 32..1280", 320) or 320,
        lores_height=r.get(c, "camera.lores_height", _int_in(24, 960), "pixels, 24..960", 180) or 180,
    )

    vision = _vision(r, doc.get("vision"), source)

    s = r.section(doc, "schedule", {"from", "to", "timezone"})
    schedule = ScheduleConfig(
        armed_from=r.get(s, "schedule.from", _hhmm, '"HH:MM" (local time)', "21:00") or "21:00",
        armed_to=r.get(s, "schedule.to", _hhmm, '"HH:MM" (local time)', "06:00") or "06:00",
        timezone=r.get(
            s, "schedule.timezone", _timezone, "an IANA zone such as Asia/Shanghai", "Asia/Shanghai"
        )
        or "Asia/Shanghai",
    )

    g = r.section(doc, "gpio", {"pir", "led", "buzzer", "button", "pin_factory", "hold_s", "buzzer_max_s"})
    pin = _int_in(0, 27)
    gpio = GpioConfig(
        pir=r.get(g, "gpio.pir", pin, "a BCM pin number 0..27"),
        led=r.get(g, "gpio.led", pin, "a BCM pin number 0..27"),
        buzzer=r.get(g, "gpio.buzzer", pin, "a BCM pin number 0..27"),
        button=r.get(g, "gpio.button", pin, "a BCM pin number 0..27"),
        pin_factory=r.get(
            g,
            "gpio.pin_factory",
            lambda v: v if v in PIN_FACTORIES else None,
            f"one of {', '.join(PIN_FACTORIES)}",
        ),
        hold_s=r.get(g, "gpio.hold_s", _float_in(0.1, 30), "seconds, 0.1..30", 2.0) or 2.0,
        buzzer_max_s=r.get(g, "gpio.buzzer_max_s", _float_in(1, 86_400), "seconds, 1..86400", 600.0) or 600.0,
    )
    pins = [
        (k, v)
        for k, v in (("pir", gpio.pir), ("led", gpio.led), ("buzzer", gpio.buzzer), ("button", gpio.button))
        if v is not None
    ]
    seen: dict[int, str] = {}
    for name, number in pins:
        if number in seen:
            r.fail(f"gpio.{name}", number, f"a pin not already used by gpio.{seen[number]}")
        seen[number] = name

    simulate = _simulate(r, doc, gpio)

    if r.problems:
        raise ConfigError(r.problems, source)
    return AgentConfig(
        device=device,
        broker=broker,
        outbox=outbox,
        camera=camera,
        schedule=schedule,
        gpio=gpio,
        state_dir=state_dir,
        health_interval_s=interval,
        vision=vision,
        simulate=simulate,
    )


def _simulate(r: _Reader, doc: Mapping[str, Any], gpio: GpioConfig) -> Any:
    """The simulated household (demo/tests): only with mock pins, never on a real panel."""
    if doc.get("simulate") is None:
        return None
    from agent.household_sim import SimulateConfig

    sim = r.section(doc, "simulate", {"panic_at_s", "ack_after_s"})
    if gpio.pin_factory != "mock" or gpio.button is None:
        r.fail("simulate", sim, "only with gpio.pin_factory: mock and a gpio.button (demo and tests)")
        return None
    seconds = _float_in(0, 86_400)
    return SimulateConfig(
        panic_at_s=r.get(sim, "simulate.panic_at_s", seconds, "seconds, 0..86400"),
        ack_after_s=r.get(sim, "simulate.ack_after_s", seconds, "seconds, 0..86400"),
    )


def _vision(r: _Reader, raw: Any, source: str) -> Any:
    # Imported here: agent.config_vision imports ConfigError from this module.
    from agent.config_vision import parse_vision

    try:
        return parse_vision(raw, source)
    except ConfigError as exc:
        r.problems.extend(exc.problems)
        return None


def _timezone(v: Any) -> str | None:
    from agent.schedule import zone

    if not isinstance(v, str):
        return None
    zone(v)  # raises ValueError when unknown
    return v


def load(path: Path = DEFAULT_PATH) -> AgentConfig:
    """Read and validate the config file; ConfigError for anything wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"(file): cannot read {path}: {exc.strerror or exc}"], str(path)) from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"(file): not valid YAML: {str(exc).splitlines()[0]}"], str(path)) from None
    cfg = parse(doc, str(path))
    return AgentConfig(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, "path": path})

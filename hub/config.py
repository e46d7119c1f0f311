"""The hub's YAML configuration (``xl-hub run --config FILE``).

Every key is optional except ``database.url``; an unknown key or a value of
the wrong type is an error that names the key, so a typo in a county's config
fails at start-up instead of silently meaning "default". Every problem of the
file is reported at once, the plug-in sections (``forward``, ``console``)
included: their schemas are leaf modules (hub/config_forward.py,
hub/config_console.py) that import nothing of the rooms they configure.

Each section is a frozen dataclass whose ``Annotated`` fields are its schema
(see xlconfig); hub/examples/hub.yaml is generated from these classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from hub.config_clips import ClipsConfig, clips_problems
from hub.config_console import ConsoleSection
from hub.config_escalation import EscalationConfig, escalation_problems
from hub.config_forward import ForwardConfig, forward_problems
from hub.config_retention import RetentionConfig, retention_problems
from hub.config_updates import RolloutConfig, UpdatesConfig, updates_problems
from protocol.ids import parse_group_id
from xlconfig import SECTION, Bool, ConfigError, Expect, Float, Int, Str, problem, read_yaml, validate

__all__ = ["ConfigError", "HubConfig", "load_config", "parse_config"]  # and the sections below

_PORT = Field(ge=1, le=65535)


def _existing_file(path: str) -> str:
    if not Path(path).is_file():
        raise ValueError("an existing file")
    return path


def _timezone(name: str) -> str:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # KeyError: ZoneInfoNotFoundError; OSError: a name that is a folder
        raise ValueError("an IANA time zone such as Asia/Shanghai") from None
    return name


_FILE = (AfterValidator(_existing_file), Expect("an existing file"))


@dataclass(frozen=True)
class TlsConfig:
    ca: Annotated[Str, *_FILE, Field(description="The county CA certificate.")]
    cert: Annotated[Str, *_FILE, Field(description="The hub's client certificate (xl-provision ca client).")]
    key: Annotated[Str, *_FILE, Field(description="Its private key.")]


@dataclass(frozen=True)
class DatabaseSection:
    url: Annotated[
        Str,
        Field(min_length=1, description="SQLAlchemy URL: sqlite:///var/hub.sqlite3 or postgresql+psycopg://xl@db/xl."),
        Expect("a database URL such as sqlite:///var/hub.sqlite3"),
    ]


@dataclass(frozen=True)
class MqttConfig:
    host: Annotated[Str, Field(description="The county broker.")] = "127.0.0.1"
    port: Annotated[Int, _PORT, Field(description="TCP port (8883: TLS).")] = 8883
    client_id: Annotated[
        Str,
        Field(min_length=1, max_length=64, description="One per hub process; the broker keeps this client's session."),
    ] = "xl-hub-1"
    share_group: Annotated[
        Str,
        AfterValidator(parse_group_id),
        Expect("a group id of [A-Za-z0-9_-], 1-32 chars"),
        Field(description="Hub workers with the same group split the load."),
    ] = "xlhub"
    keepalive_s: Annotated[Int, Field(gt=0, description="MQTT keepalive.")] = 30
    session_expiry_s: Annotated[
        Int, Field(ge=0, description="The broker queues for us this long while the hub is down.")
    ] = 3600
    receive_maximum: Annotated[
        Int, Field(gt=0, le=65535, description="Unacknowledged messages the broker may send us: bounds a batch.")
    ] = 2000
    tls: Annotated[
        TlsConfig | None, Field(description="Client certificate login; unset: no TLS (a broker on loopback only).")
    ] = None


@dataclass(frozen=True)
class IngestConfig:
    batch_max: Annotated[Int, Field(gt=0, description="Commit after this many messages ...")] = 1000
    batch_ms: Annotated[Int, Field(gt=0, description="... or this long after the first, whichever comes first.")] = 20
    registry_ttl_s: Annotated[Float, Field(gt=0, description="A registry change is seen within this.")] = 30.0
    reject_log_interval_s: Annotated[
        Float, Field(ge=0, description="At most one log line per rejection reason this often.")
    ] = 10.0


@dataclass(frozen=True)
class HealthConfig:
    check_interval_s: Annotated[Float, Field(gt=0, description="How often device health is evaluated.")] = 5.0
    missed_heartbeats: Annotated[
        Int, Field(gt=0, description="A device is offline after this many missed heartbeats.")
    ] = 3
    disk_low_mb: Annotated[Int, Field(ge=0, description="Free SD card below this: a health warning.")] = 500
    bucket_minutes: Annotated[Int, Field(gt=0, description="Width of the health history buckets.")] = 10
    offline_grace_s: Annotated[
        Float,
        Field(
            gt=0,
            description="An armed device must stay away this long before "
            "its offline_armed alarm: an agent restart or a Wi-Fi blip is back "
            "within it (hub/README.md gives the worst case).",
        ),
    ] = 30.0
    broker_window_s: Annotated[
        Float,
        Field(
            gt=0,
            description="A broker-wide disconnect: at least "
            "broker_min_devices, and broker_fraction of those online, gone "
            "within this many seconds. One alarm about the broker, not one per "
            "house. Shorter than offline_grace_s.",
        ),
    ] = 10.0
    broker_fraction: Annotated[Float, Field(gt=0, le=1)] = 0.5
    broker_min_devices: Annotated[Int, Field(gt=0)] = 10
    # Issue 21, flapping (hub/health/flapping.py). On rural 4G a cell handover or
    # an agent restart drops a device once or twice an hour; five drops in half
    # an hour is a failing link or power supply.
    flap_count: Annotated[
        Int,
        Field(
            ge=2,
            description="A device going offline this many times within "
            "flap_window_s gets one flapping alarm instead of an offline alarm each time.",
        ),
    ] = 5
    flap_window_s: Annotated[Float, Field(gt=0, description="The window flap_count is counted in.")] = 1800.0
    flap_stable_s: Annotated[
        Float,
        Field(
            gt=0,
            description="A flapping alarm clears once the device's presence has "
            "not changed for this long. At least flap_window_s.",
        ),
    ] = 3600.0


@dataclass(frozen=True)
class AlertConfig:
    person_score_min: Annotated[Int, Field(ge=0, le=100, description="A person below this score alerts nobody.")] = 60
    debounce_minutes: Annotated[Float, Field(ge=0, description="One alert per household this often.")] = 5.0
    ack_timeout_s: Annotated[
        Float, Field(gt=0, description="Neighbours not acknowledging within this: recorded as unanswered.")
    ] = 300.0
    max_event_age_s: Annotated[
        Float,
        Field(
            gt=0,
            description="Older events (replayed from an outbox) do not "
            "alert neighbours; a late panic still does, marked delayed.",
        ),
    ] = 300.0
    timezone: Annotated[
        Str,
        AfterValidator(_timezone),
        Expect("an IANA time zone such as Asia/Shanghai"),
        Field(description="Armed hours and the console's dates."),
    ] = "Asia/Shanghai"


@dataclass(frozen=True)
class MetricsConfig:
    enabled: Annotated[Bool, Field(description="Serve Prometheus /metrics.")] = True
    host: Str = "127.0.0.1"
    port: Annotated[Int, _PORT] = 9108


@dataclass(frozen=True)
class HubFile:
    """The file as written, in the order the example config lists it."""

    database: DatabaseSection
    mqtt: Annotated[MqttConfig, SECTION] = field(default_factory=MqttConfig)
    ingest: Annotated[IngestConfig, SECTION] = field(default_factory=IngestConfig)
    health: Annotated[HealthConfig, SECTION] = field(default_factory=HealthConfig)
    alerts: Annotated[AlertConfig, SECTION] = field(default_factory=AlertConfig)
    metrics: Annotated[MetricsConfig, SECTION] = field(default_factory=MetricsConfig)
    updates: Annotated[UpdatesConfig, SECTION] = field(default_factory=UpdatesConfig)
    rollout: Annotated[RolloutConfig, SECTION] = field(default_factory=RolloutConfig)
    clips: Annotated[ClipsConfig, SECTION] = field(default_factory=ClipsConfig)
    retention: Annotated[RetentionConfig, SECTION] = field(default_factory=RetentionConfig)
    escalation: Annotated[EscalationConfig, SECTION] = field(default_factory=EscalationConfig)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    forward: Annotated[
        ForwardConfig | None, Field(description="Forwarding to the county 综治 platform; unset: none.")
    ] = None
    console: Annotated[ConsoleSection | None, Field(description="The operators' console; unset: none.")] = None


@dataclass(frozen=True)
class HubConfig:
    database_url: str
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    updates: UpdatesConfig = field(default_factory=UpdatesConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    clips: ClipsConfig = field(default_factory=ClipsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    escalation: EscalationConfig = field(default_factory=EscalationConfig)
    log_level: str = "INFO"
    # The validated sections of the parts that plug into the hub, by name:
    # "forward" (a ForwardConfig) and "console" (a ConsoleSection).
    plugins: dict[str, Any] = field(default_factory=dict)


PLUGIN_SECTIONS = ("forward", "console")


def parse_config(raw: Any, source: str = "config") -> HubConfig:
    try:
        f = validate(HubFile, raw)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None
    problems = forward_problems(f.forward, "forward")
    problems += updates_problems(f.updates, "updates", clips_enabled=f.clips.enabled)
    problems += clips_problems(f.clips, "clips")
    problems += escalation_problems(f.escalation, "escalation")
    problems += retention_problems(f.retention, "retention", f.clips.keep_days_alert)
    if f.health.broker_window_s >= f.health.offline_grace_s:
        # Otherwise the first houses of a broker restart get their own alarm
        # before the burst is recognised as the broker's.
        problems.append(
            problem(
                "health.broker_window_s",
                f.health.broker_window_s,
                f"shorter than health.offline_grace_s ({f.health.offline_grace_s:g})",
            )
        )
    if f.health.flap_stable_s < f.health.flap_window_s:
        # Otherwise the downs still in the window raise the alarm again at once.
        problems.append(
            problem(
                "health.flap_stable_s",
                f.health.flap_stable_s,
                f"at least health.flap_window_s ({f.health.flap_window_s:g})",
            )
        )
    if problems:
        raise ConfigError(problems, source)
    plugins = {name: getattr(f, name) for name in PLUGIN_SECTIONS if getattr(f, name) is not None}
    return HubConfig(
        database_url=f.database.url,
        mqtt=f.mqtt,
        ingest=f.ingest,
        health=f.health,
        alerts=f.alerts,
        metrics=f.metrics,
        updates=f.updates,
        rollout=f.rollout,
        clips=f.clips,
        retention=f.retention,
        escalation=f.escalation,
        log_level=f.log_level,
        plugins=plugins,
    )


def load_config(path: str | Path) -> HubConfig:
    return read_yaml(Path(path), parse_config)

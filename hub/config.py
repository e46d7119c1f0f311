"""The hub's YAML configuration (``xl-hub run --config FILE``).

Every key is optional except ``database.url``; an unknown key or a value of
the wrong type is an error that names the key, so a typo in a county's config
fails at start-up instead of silently meaning "default".
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class TlsConfig:
    ca: str = ""
    cert: str = ""
    key: str = ""


@dataclass(frozen=True)
class MqttConfig:
    host: str = "127.0.0.1"
    port: int = 8883
    client_id: str = "xl-hub-1"
    share_group: str = "xlhub"  # workers with the same group split the load
    keepalive_s: int = 30
    session_expiry_s: int = 3600  # the broker queues for us this long while the hub is down
    receive_maximum: int = 2000  # unacked messages the broker may send us: bounds a batch
    tls: TlsConfig | None = None


@dataclass(frozen=True)
class IngestConfig:
    batch_max: int = 1000  # commit after this many messages ...
    batch_ms: int = 20  # ... or this long after the first, whichever comes first
    registry_ttl_s: float = 30.0
    reject_log_interval_s: float = 10.0


@dataclass(frozen=True)
class HealthConfig:
    check_interval_s: float = 5.0
    missed_heartbeats: int = 3
    disk_low_mb: int = 500
    bucket_minutes: int = 10
    # An armed device must stay away this long before its offline_armed alarm:
    # an agent restart or a Wi-Fi blip is back within it (see README for the
    # resulting worst case against the 90 s offline target).
    offline_grace_s: float = 30.0
    # A broker-wide disconnect: at least broker_min_devices, and at least
    # broker_fraction of the devices online, going offline within
    # broker_window_s. It is one alarm about the broker, not one per house.
    broker_window_s: float = 10.0
    broker_fraction: float = 0.5
    broker_min_devices: int = 10


@dataclass(frozen=True)
class AlertConfig:
    person_score_min: int = 60
    debounce_minutes: float = 5.0
    ack_timeout_s: float = 300.0
    max_event_age_s: float = 300.0  # older events (replayed from an outbox) do not alert neighbours
    timezone: str = "Asia/Shanghai"


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 9108


@dataclass(frozen=True)
class HubConfig:
    database_url: str
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    alerts: AlertConfig = field(default_factory=AlertConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    log_level: str = "INFO"
    # Sections owned by parts that plug into the hub (the platform forwarder,
    # the console): passed through as mappings for them to validate.
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)


PLUGIN_SECTIONS = ("forward", "console")
_POSITIVE = {
    "mqtt.port", "mqtt.keepalive_s", "mqtt.receive_maximum", "ingest.batch_max", "ingest.batch_ms",
    "ingest.registry_ttl_s", "health.check_interval_s", "health.missed_heartbeats",
    "health.bucket_minutes", "health.offline_grace_s", "health.broker_window_s", "health.broker_min_devices",
    "alerts.ack_timeout_s", "alerts.max_event_age_s", "metrics.port",
}


def _section(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(raw).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]} is not a known key (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{where}.{name}"
        default = getattr(cls(), name)
        if name == "tls":
            values[name] = None if value is None else _tls(value, key)
            continue
        values[name] = _typed(value, default, key)
    return cls(**values)


def _typed(value: Any, default: Any, key: str) -> Any:
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} must be an integer, got {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        value = float(value)
    elif isinstance(default, str) and not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {value!r}")
    if key in _POSITIVE and value <= 0:
        raise ConfigError(f"{key} must be positive, got {value!r}")
    if key in ("mqtt.port", "metrics.port") and value > 65535:
        raise ConfigError(f"{key} must be a TCP port 1..65535, got {value!r}")
    if key == "health.broker_fraction" and not 0 < value <= 1:
        raise ConfigError(f"{key} must be more than 0 and at most 1, got {value!r}")
    if key == "alerts.person_score_min" and not 0 <= value <= 100:
        raise ConfigError(f"{key} must be 0..100, got {value!r}")
    return value


def _tls(raw: Any, where: str) -> TlsConfig:
    tls = _section(TlsConfig, raw, where)
    for name in ("ca", "cert", "key"):
        if not getattr(tls, name):
            raise ConfigError(f"{where}.{name} is required when TLS is configured")
    for name in ("ca", "cert", "key"):
        path = getattr(tls, name)
        if not Path(path).is_file():
            raise ConfigError(f"{where}.{name}: file {path!r} does not exist")
    return tls


def parse_config(raw: Any, source: str = "config") -> HubConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    allowed = {"database", "mqtt", "ingest", "health", "alerts", "metrics", "log_level", *PLUGIN_SECTIONS}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{unknown[0]} is not a known key (known: {', '.join(sorted(allowed))})")
    db = raw.get("database")
    if not isinstance(db, dict) or not isinstance(db.get("url"), str) or not db["url"]:
        raise ConfigError("database.url is required (e.g. sqlite:///var/hub.sqlite3)")
    if set(db) - {"url"}:
        raise ConfigError(f"database.{sorted(set(db) - {'url'})[0]} is not a known key (known: url)")
    mqtt = _section(MqttConfig, raw.get("mqtt"), "mqtt")
    from protocol.errors import ProtocolError
    from protocol.ids import parse_group_id

    try:
        parse_group_id(mqtt.share_group)
    except ProtocolError as exc:
        raise ConfigError(f"mqtt.share_group: {exc.detail}") from None
    alerts = _section(AlertConfig, raw.get("alerts"), "alerts")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(alerts.timezone)
    except Exception:
        raise ConfigError(f"alerts.timezone: unknown time zone {alerts.timezone!r}") from None
    health = _section(HealthConfig, raw.get("health"), "health")
    if health.broker_window_s >= health.offline_grace_s:
        # Otherwise the first houses of a broker restart get their own alarm
        # before the burst is recognised as the broker's.
        raise ConfigError(f"health.broker_window_s ({health.broker_window_s:g}) must be shorter than "
                          f"health.offline_grace_s ({health.offline_grace_s:g})")
    level = raw.get("log_level", "INFO")
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"log_level must be DEBUG, INFO, WARNING or ERROR, got {level!r}")
    return HubConfig(
        database_url=db["url"],
        mqtt=mqtt,
        ingest=_section(IngestConfig, raw.get("ingest"), "ingest"),
        health=health,
        alerts=alerts,
        metrics=_section(MetricsConfig, raw.get("metrics"), "metrics"),
        log_level=level,
        plugins=_plugins(raw),
    )


def _plugins(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in PLUGIN_SECTIONS:
        section = raw.get(name)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise ConfigError(f"{name} must be a mapping, got {type(section).__name__}")
        out[name] = section
    return out


def load_config(path: str | Path) -> HubConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config {p}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    return parse_config(raw, str(p))

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.config import ConfigError, load_config, parse_config


def test_defaults_and_overrides() -> None:
    cfg = parse_config({"database": {"url": "sqlite:///x.db"}, "mqtt": {"port": 1884},
                        "alerts": {"debounce_minutes": 2}})
    assert cfg.mqtt.port == 1884 and cfg.mqtt.tls is None
    assert cfg.alerts.debounce_minutes == 2.0 and cfg.alerts.person_score_min == 60
    assert cfg.ingest.batch_max == 1000
    assert (cfg.health.offline_grace_s, cfg.health.broker_window_s) == (30.0, 10.0)
    assert (cfg.health.broker_fraction, cfg.health.broker_min_devices) == (0.5, 10)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "database.url is required"),
        ({"database": {"url": "sqlite://"}, "mqtt": {"prot": 1}}, "mqtt.prot is not a known key"),
        ({"database": {"url": "sqlite://"}, "mqtt": {"port": "x"}}, "mqtt.port must be an integer"),
        ({"database": {"url": "sqlite://"}, "mqtt": {"port": 70000}}, "mqtt.port must be a TCP port"),
        ({"database": {"url": "sqlite://"}, "ingest": {"batch_ms": 0}}, "ingest.batch_ms must be positive"),
        ({"database": {"url": "sqlite://"}, "alerts": {"person_score_min": 101}}, "alerts.person_score_min"),
        ({"database": {"url": "sqlite://"}, "alerts": {"timezone": "Mars/Base"}}, "alerts.timezone"),
        ({"database": {"url": "sqlite://"}, "mqtt": {"share_group": "a/b"}}, "mqtt.share_group"),
        ({"database": {"url": "sqlite://"}, "mqtt": {"tls": {"ca": "/nope"}}}, "mqtt.tls.cert is required"),
        ({"database": {"url": "sqlite://"}, "metrics": {"enabled": "yes"}}, "metrics.enabled must be true"),
        ({"database": {"url": "sqlite://"}, "health": {"offline_grace_s": 0}},
         "health.offline_grace_s must be positive"),
        ({"database": {"url": "sqlite://"}, "health": {"offline_grace_s": "30s"}},
         "health.offline_grace_s must be a number"),
        ({"database": {"url": "sqlite://"}, "health": {"broker_fraction": 1.5}},
         "health.broker_fraction must be more than 0"),
        ({"database": {"url": "sqlite://"}, "health": {"broker_min_devices": 0}},
         "health.broker_min_devices must be positive"),
        ({"database": {"url": "sqlite://"}, "health": {"offline_grace_s": 5}},
         "health.broker_window_s (10) must be shorter than health.offline_grace_s (5)"),
        ({"database": {"url": "sqlite://"}, "forwarder": {}}, "forwarder is not a known key"),
        ([1, 2], "top level must be a mapping"),
    ],
)
def test_errors_name_the_key(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(raw)


def test_tls_files_must_exist(tmp_path: Path) -> None:
    for name in ("ca.pem", "hub.pem"):
        (tmp_path / name).write_text("x")
    raw = {"database": {"url": "sqlite://"},
           "mqtt": {"tls": {"ca": str(tmp_path / "ca.pem"), "cert": str(tmp_path / "hub.pem"),
                            "key": str(tmp_path / "hub.key")}}}
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.key: file .*hub\.key.* does not exist"):
        parse_config(raw)
    (tmp_path / "hub.key").write_text("x")
    assert parse_config(raw).mqtt.tls is not None


def test_load_config_reports_yaml_errors(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("database: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")

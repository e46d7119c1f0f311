from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.config import ConfigError, load_config, parse_config

DB = {"database": {"url": "sqlite://"}}


def test_defaults_and_overrides() -> None:
    cfg = parse_config(
        {"database": {"url": "sqlite:///x.db"}, "mqtt": {"port": 1884}, "alerts": {"debounce_minutes": 2}}
    )
    assert cfg.mqtt.port == 1884 and cfg.mqtt.tls is None
    assert cfg.alerts.debounce_minutes == 2.0 and cfg.alerts.person_score_min == 60
    assert cfg.ingest.batch_max == 1000
    assert (cfg.health.offline_grace_s, cfg.health.broker_window_s) == (30.0, 10.0)
    assert (cfg.health.broker_fraction, cfg.health.broker_min_devices) == (0.5, 10)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "database: missing, expected a mapping (required)"),
        ({**DB, "mqtt": {"prot": 1}}, "mqtt.prot: found 1, expected one of the known keys (host, port, "),
        ({**DB, "mqtt": {"port": "x"}}, "mqtt.port: found 'x', expected an integer 1..65535"),
        ({**DB, "mqtt": {"port": 70000}}, "mqtt.port: found 70000, expected an integer 1..65535"),
        ({**DB, "ingest": {"batch_ms": 0}}, "ingest.batch_ms: found 0, expected milliseconds, more than 0"),
        ({**DB, "alerts": {"person_score_min": 101}}, "alerts.person_score_min: found 101, expected an integer 0..100"),
        ({**DB, "alerts": {"timezone": "Mars/Base"}}, "alerts.timezone: found 'Mars/Base', expected an IANA time zone"),
        ({**DB, "mqtt": {"share_group": "a/b"}}, "mqtt.share_group: found 'a/b', expected a group id"),
        ({**DB, "mqtt": {"tls": {"ca": "/nope"}}}, "mqtt.tls.cert: missing, expected an existing file (required)"),
        ({**DB, "metrics": {"enabled": "yes"}}, "metrics.enabled: found 'yes', expected true or false"),
        ({**DB, "health": {"offline_grace_s": 0}}, "health.offline_grace_s: found 0, expected seconds, more than 0"),
        ({**DB, "health": {"offline_grace_s": "30s"}}, "health.offline_grace_s: found '30s', expected seconds"),
        (
            {**DB, "health": {"broker_fraction": 1.5}},
            "health.broker_fraction: found 1.5, expected a number, more than 0 and at most 1",
        ),
        (
            {**DB, "health": {"broker_min_devices": 0}},
            "health.broker_min_devices: found 0, expected an integer, more than 0",
        ),
        (
            {**DB, "health": {"offline_grace_s": 5}},
            "health.broker_window_s: found 10.0, expected shorter than health.offline_grace_s (5)",
        ),
        ({**DB, "forwarder": {}}, "forwarder: found {}, expected one of the known keys"),
        ([1, 2], "(top level): found [1, 2], expected a mapping"),
        # The console and forward sections are validated with the rest of the file (they were not, before
        # the one schema: `user_failures: "five"` and `lockout_s: -1` started a console).
        (
            {**DB, "console": {"login_throttle": {"user_failures": "five"}}},
            "console.login_throttle.user_failures: found 'five', expected an integer, at least 1",
        ),
        (
            {**DB, "console": {"login_throttle": {"lockout_s": -1}}},
            "console.login_throttle.lockout_s: found -1, expected seconds, at least 1",
        ),
        ({**DB, "console": {"prot": 8080}}, "console.prot: found 8080, expected one of"),
        (
            {**DB, "forward": {"webhook": {"url": "ftp://x", "secret": "s"}}},
            "forward.webhook.url: found 'ftp://x', expected an http(s) URL",
        ),
        (
            {**DB, "forward": {"viid": {"base_url": "http://v", "gateway_id": "1"}}},
            "forward.viid.gateway_id: found '1', expected a 20-digit GA/T 1400 ID",
        ),
        (
            {**DB, "forward": {"webhook": {"url": "http://x"}}},
            "forward.webhook.secret_file: found None, expected a file holding it (or secret inline)",
        ),
        (
            {**DB, "forward": {"retry_cap_s": 0, "webhook": {"url": "http://x"}}},
            "forward.retry_cap_s: found 0, expected seconds, more than 0",
        ),
        ({**DB, "forward": {}}, "forward: found {}, expected at least one of viid"),
    ],
)
def test_errors_name_the_key(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(raw)


def test_tls_files_must_exist(tmp_path: Path) -> None:
    for name in ("ca.pem", "hub.pem"):
        (tmp_path / name).write_text("x")
    raw = {
        "database": {"url": "sqlite://"},
        "mqtt": {
            "tls": {"ca": str(tmp_path / "ca.pem"), "cert": str(tmp_path / "hub.pem"), "key": str(tmp_path / "hub.key")}
        },
    }
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.key: found '.*hub\.key', expected an existing file"):
        parse_config(raw)
    (tmp_path / "hub.key").write_text("x")
    assert parse_config(raw).mqtt.tls is not None


def test_load_config_reports_yaml_errors(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("database: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_every_problem_is_reported_at_once_one_per_key() -> None:
    raw = {
        "database": {"url": "sqlite://"},
        "mqtt": {"port": 0, "prot": 1},
        "ingest": {"batch_max": "200"},
        "console": {"login_throttle": {"user_failures": "five", "lockout_s": -1}},
    }
    with pytest.raises(ConfigError) as err:
        parse_config(raw, "hub.yaml")
    keys = [p.split(":")[0] for p in err.value.problems]
    assert keys == [
        "mqtt.port",
        "mqtt.prot",
        "ingest.batch_max",
        "console.login_throttle.user_failures",
        "console.login_throttle.lockout_s",
    ]
    assert all(", expected " in p and ": found " in p for p in err.value.problems)
    assert err.value.lines()[0] == "hub.yaml: mqtt.port: found 0, expected an integer 1..65535"


def test_plugin_sections_arrive_validated() -> None:
    cfg = parse_config(
        {
            "database": {"url": "sqlite://"},
            "console": {"port": 8081, "login_throttle": {"window_s": 60}},
            "forward": {"webhook": {"url": "https://zz.example/xl", "secret": "s", "event_kinds": ["panic"]}},
        }
    )
    assert cfg.plugins["console"].port == 8081 and cfg.plugins["console"].throttle.window_s == 60
    assert cfg.plugins["console"].throttle.user_failures == 5
    assert cfg.plugins["forward"].webhook.event_kinds == ("panic",) and cfg.plugins["forward"].retry_cap_s == 600
    assert "console" not in parse_config({"database": {"url": "sqlite://"}, "console": None}).plugins


def test_running_parts_take_their_defaults_from_the_schema() -> None:
    # Each default is written once, on the config section; the objects the code builds directly agree with it.
    from hub.forward import ViidConfig, WebhookConfig
    from hub.forward.forwarder import RetryPolicy

    forward = parse_config(
        {
            **DB,
            "forward": {
                "viid": {"base_url": "http://v", "gateway_id": "62062100002000000001", "password": "p"},
                "webhook": {"url": "http://w", "secret": "s"},
            },
        }
    ).plugins["forward"]
    viid = ViidConfig(base_url="http://v", gateway_id="62062100002000000001", password="p")
    assert (viid.keepalive_s, viid.timeout_s, viid.event_sort, viid.verify_tls) == (
        forward.viid.keepalive_s,
        forward.viid.timeout_s,
        forward.viid.event_sort,
        forward.viid.verify_tls,
    )
    hook = WebhookConfig(url="http://w", secret=b"s")
    assert (hook.timeout_s, hook.include_snapshot, hook.event_kinds) == (
        forward.webhook.timeout_s,
        forward.webhook.include_snapshot,
        frozenset(forward.webhook.event_kinds),
    )
    policy = RetryPolicy()
    assert (policy.base_s, policy.cap_s, policy.dead_after_s) == (
        forward.retry_base_s,
        forward.retry_cap_s,
        forward.dead_after_h * 3600,
    )


def test_clips_need_the_servers_tls_files_not_updates() -> None:
    """Clips without OTA (issue 18): the devices' HTTPS server runs for clips alone, so
    its TLS files are required, the TUF repository and keys are not."""
    with pytest.raises(ConfigError) as err:
        parse_config({**DB, "clips": {"enabled": True}})
    lines = str(err.value)
    assert "updates.ca: found None, expected a path (required when clips.enabled is true)" in lines
    assert "updates.cert:" in lines and "updates.key:" in lines
    assert "updates.repo" not in lines and "updates.keys_dir" not in lines
    assert "clips.enabled: found" not in lines  # no longer refused for want of updates.enabled
    with pytest.raises(ConfigError, match=r"updates\.repo: found None, expected a path \(required when updates"):
        parse_config({**DB, "updates": {"enabled": True}, "clips": {"enabled": True}})


@pytest.mark.parametrize(
    ("clips", "message"),
    [
        ({"keep_days_alert": 0}, "clips.keep_days_alert: found 0, expected a number, more than 0"),
        ({"keep_days_alert": "long"}, "clips.keep_days_alert: found 'long', expected a number"),
        (
            {"keep_days": 30, "keep_days_alert": 10},
            "clips.keep_days_alert: found 10.0, expected at least clips.keep_days (30): alert clips are kept longest",
        ),
        ({"keep_days": 120}, "clips.keep_days_alert: found 90.0, expected at least clips.keep_days (120)"),
    ],
)
def test_clip_retention_values_are_checked_by_name(clips: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({**DB, "clips": clips})


def test_clip_retention_defaults() -> None:
    cfg = parse_config(DB).clips
    assert (cfg.keep_days, cfg.keep_days_alert, cfg.max_bytes) == (30.0, 90.0, 50_000_000_000)
    assert parse_config({**DB, "clips": {"keep_days": 7, "keep_days_alert": 7}}).clips.keep_days_alert == 7.0

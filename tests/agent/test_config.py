"""Config validation: every error names the dotted key, the value found and what was expected."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from agent import config
from agent.certs import check_tls_files
from agent.config import ConfigError
from provisioning import pki

EXAMPLE = Path(__file__).resolve().parents[2] / "agent" / "examples" / "agent.yaml"


def example() -> dict:
    doc = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    # A section whose keys are all commented out (their defaults) is YAML null; the edits below fill it in.
    return {key: {} if value is None else value for key, value in doc.items()}


def test_example_config_is_valid() -> None:
    cfg = config.load(EXAMPLE)
    assert cfg.device.id == "62062101011198000123"
    assert (cfg.broker.host, cfg.broker.port) == ("hub.minqin.example", 8883)
    assert cfg.outbox.path == Path("/var/lib/xueliang/outbox.sqlite3")
    assert cfg.health_interval_s == 1800 and not cfg.gpio.any and cfg.gpio.hold_s == 2.0


@pytest.mark.parametrize(
    ("edit", "key", "found"),
    [
        (lambda d: d["device"].update(id="6206210101119800012"), "device.id", "'6206210101119800012'"),
        (lambda d: d["device"].update(id=62062101011198000123), "device.id", "62062101011198000123"),
        (lambda d: d["broker"].update(url="mqtt://hub:1883"), "broker.url", "'mqtt://hub:1883'"),
        (lambda d: d["broker"].update(keepalive="60"), "broker.keepalive", "'60'"),
        (lambda d: d["outbox"].update(max_rows=-1), "outbox.max_rows", "-1"),
        (lambda d: d["schedule"].update({"from": "9pm"}), "schedule.from", "'9pm'"),
        (lambda d: d["schedule"].update(timezone="Mars/Olympus"), "schedule.timezone", "'Mars/Olympus'"),
        (lambda d: d["gpio"].update(led=40), "gpio.led", "40"),
        (lambda d: d["gpio"].update(led=17, buzzer=17), "gpio.buzzer", "17"),
        (lambda d: d["camera"].update(fps=0), "camera.fps", "0"),
        (lambda d: d["health"].update(intervall_s=5), "health.intervall_s", "5"),
        (lambda d: d.update(brokr={}), "brokr", "{}"),
        (lambda d: d.update(device="x"), "device", "'x'"),
    ],
)
def test_malformed_config_names_the_key(edit, key: str, found: str) -> None:  # type: ignore[no-untyped-def]
    doc = example()
    edit(doc)
    with pytest.raises(ConfigError) as err:
        config.parse(doc)
    messages = [p for p in err.value.problems if p.startswith(f"{key}:")]
    assert messages, err.value.problems
    assert f"found {found}" in messages[0] and "expected" in messages[0]


def test_all_problems_reported_at_once_and_missing_keys(tmp_path: Path) -> None:
    doc = example()
    del doc["device"]["group"]
    del doc["broker"]["cert"]
    doc["broker"]["url"] = "https://x"
    with pytest.raises(ConfigError) as err:
        config.parse(doc)
    keys = sorted(p.split(":")[0] for p in err.value.problems)
    assert keys == ["broker.cert", "broker.url", "device.group"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("device: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "missing.yaml")


def _expired_cert(ca: pki.CA, days_left: float) -> x509.Certificate:
    key = pki.new_key()
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "62062101011198000123")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=400))
        .not_valid_after(now + dt.timedelta(days=days_left))
        .sign(ca.key, hashes.SHA256())
    )


def test_certificate_checks(tmp_path: Path) -> None:
    ca = pki.CA.create("Test CA")
    ca_path, cert_path, key_path = tmp_path / "ca.crt", tmp_path / "d.crt", tmp_path / "d.key"
    pki.write_public(ca_path, pki.cert_pem(ca.cert))
    pki.write_private(key_path, pki.key_pem(pki.new_key()))
    pki.write_public(cert_path, pki.cert_pem(_expired_cert(ca, 200)))
    assert check_tls_files(ca_path, cert_path, key_path).ok

    pki.write_public(cert_path, pki.cert_pem(_expired_cert(ca, 10)))
    soon = check_tls_files(ca_path, cert_path, key_path)
    assert soon.ok and any("broker.cert: certificate expires in" in w for w in soon.warnings)

    pki.write_public(cert_path, pki.cert_pem(_expired_cert(ca, -1)))
    expired = check_tls_files(ca_path, cert_path, key_path)
    assert any(e.startswith("broker.cert: certificate expired") for e in expired.errors)

    os.chmod(key_path, 0o644)
    loose = check_tls_files(ca_path, cert_path, key_path)
    assert any(e.startswith("broker.key: found mode 0644") for e in loose.errors)

    missing = check_tls_files(tmp_path / "nope.crt", cert_path, key_path)
    assert any(e.startswith("broker.ca: found") and "existing file" in e for e in missing.errors)


def test_link_settings_take_the_broker_sections_defaults() -> None:
    # They had drifted: LinkSettings.keepalive was 60 while the config's default was 45.
    from agent.link import LinkSettings

    link = LinkSettings("62062101011198000123", "g1", "hub", 8883, Path("ca"), Path("c"), Path("k"))
    broker = config.parse(example()).broker
    names = ("keepalive", "keepalive_idle", "tls_version", "max_inflight", "session_expiry", "backoff_base_s")
    for name in (*names, "backoff_cap_s"):
        assert getattr(link, name) == getattr(broker, name), name
    assert (link.keepalive, link.keepalive_idle) == (50, 240)


def test_unknown_keys_are_refused_at_every_depth() -> None:
    doc = example()
    doc["vision"] = {"motion": {"treshold": 5}, "detect": {"fps": 3}}
    doc["schedule"]["armed_from"] = "21:00"  # the attribute's name is not the key (`from`)
    with pytest.raises(ConfigError) as err:
        config.parse(doc)
    keys = sorted(p.split(":")[0] for p in err.value.problems)
    assert keys == ["schedule.armed_from", "vision.detect.fps", "vision.motion.treshold"]
    assert all("expected one of the known keys (" in p for p in err.value.problems)

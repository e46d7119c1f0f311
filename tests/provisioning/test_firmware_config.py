"""The Pi-side files in a bundle: valid for systemd, parseable, complete."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from provisioning.bundle import DeviceSpec
from provisioning.commands import ca_init, open_db
from provisioning.enroll import Enroller
from provisioning.label import qr_payload
from provisioning.state import State
from provisioning.templates import PI_DEFAULTS, TemplateError, render, render_pi_files

HOUSEHOLD = 'HH-7 "东": #1'  # quotes, colon and hash must survive YAML


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fw")
    state = State(root / "state")
    ca_init(
        state,
        broker_host="hub.minqin.local",
        hostnames=[],
        broker_port=8883,
        ntp_server="ntp.minqin.local",
        hub_cn="hub",
        force=False,
    )
    engine = open_db(state, None)
    spec = DeviceSpec(
        township="03",
        township_name="苏武镇",
        village="羊路村",
        household=HOUSEHOLD,
        group="g0301",
        lat=38.7,
        lon=103.2,
        name="赵家",
        armed_from="21:00",
        armed_to="05:00",
    )
    outcome = Enroller(state, engine).run([(None, spec)])
    engine.dispose()
    assert not outcome.errors
    return state.bundle_dir(outcome.results[0].device_id)


def _ini(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(path.read_text())
    return parser


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and not os.environ.get("CI"),
    reason="systemd-analyze missing (tools/ensure-system.sh installs systemd)",
)
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, bundle: Path) -> None:
    # verify insists that ExecStart exists, and /opt/xueliang only exists on a Pi: render the same
    # template with the binary at a real (fake) path; everything else is byte-identical.
    fake = tmp_path / "xl-agent"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    shipped = (bundle / "system" / "xueliang-agent.service").read_text()
    unit = tmp_path / "xueliang-agent.service"
    unit.write_text(render("xueliang-agent.service", {**PI_DEFAULTS, "agent_bin": fake}))
    assert unit.read_text().replace(str(fake), PI_DEFAULTS["agent_bin"]) == shipped  # type: ignore[arg-type]
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines() if "xueliang-agent" in line]
    assert proc.returncode == 0 and not complaints, proc.stdout + proc.stderr


def test_unit_keys(bundle: Path) -> None:
    svc = _ini(bundle / "system" / "xueliang-agent.service")["Service"]
    assert svc["Type"] == "notify" and svc["Restart"] == "always" and int(svc["WatchdogSec"]) > 0
    assert svc["ExecStart"] == "/opt/xueliang/current/venv/bin/xl-agent run --config /etc/xueliang/agent.yaml"
    assert svc["ExecStartPre"] == "-/usr/bin/python3 /opt/xueliang/guard.py"
    assert (svc["User"], svc["SupplementaryGroups"]) == ("xueliang", "video gpio")
    assert svc["NoNewPrivileges"] == "yes" and svc["ProtectSystem"] == "strict"
    assert svc["ReadWritePaths"] == "/var/lib/xueliang /opt/xueliang" and svc["PrivateTmp"] == "yes"
    assert svc["ProtectHome"] == "yes"


def test_config_txt_and_dropins_parse(bundle: Path) -> None:
    lines = [ln.strip() for ln in (bundle / "system" / "config.txt").read_text().splitlines()]
    settings = dict(ln.split("=", 1) for ln in lines if ln and not ln.startswith("#"))
    assert all("=" in ln for ln in lines if ln and not ln.startswith("#"))
    assert settings == {"camera_auto_detect": "1", "dtparam": "watchdog=on"}
    journal = _ini(bundle / "system" / "journald.conf")["Journal"]
    assert journal["Storage"] == "volatile" and journal["RuntimeMaxUse"].endswith("M")
    assert _ini(bundle / "system" / "timesyncd.conf")["Time"]["NTP"] == "ntp.minqin.local"
    assert int(_ini(bundle / "system" / "watchdog.conf")["Manager"]["RuntimeWatchdogSec"]) <= 15


def test_agent_yaml(bundle: Path) -> None:
    conf = yaml.safe_load((bundle / "agent.yaml").read_text())
    assert conf["device"] == {"id": bundle.name, "group": "g0301", "household": HOUSEHOLD}
    assert conf["broker"]["url"] == "mqtts://hub.minqin.local:8883"
    assert conf["broker"]["key"] == "/etc/xueliang/tls/device.key"
    assert conf["schedule"] == {"from": "21:00", "to": "05:00", "timezone": "Asia/Shanghai"}
    # Releases come from the hub's update server on the broker's host (ca init --update-port).
    assert conf["update"] == {"url": "https://hub.minqin.local:8443/tuf/"}


def test_agent_yaml_is_accepted_by_the_agent(bundle: Path) -> None:
    agent_config = pytest.importorskip("agent.config")
    config = agent_config.parse(yaml.safe_load((bundle / "agent.yaml").read_text()), "bundle agent.yaml")
    assert config.device.id == bundle.name and config.device.household == HOUSEHOLD
    assert (config.broker.host, config.broker.port) == ("hub.minqin.local", 8883)
    assert (config.schedule.armed_from, config.schedule.armed_to) == ("21:00", "05:00")
    assert not config.gpio.any  # pins stay commented until the installer knows the wiring
    assert config.update.url == "https://hub.minqin.local:8443/tuf/"


def test_first_boot_script(bundle: Path) -> None:
    script = bundle / "first-boot.sh"
    assert os.access(script, os.X_OK)
    for shell in ("sh", "bash"):
        proc = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    text = script.read_text()
    assert "--system-site-packages" in text and "video,gpio" in text and "enable xueliang-agent" in text
    assert "@{" not in text
    # Every file the script installs is in the bundle.
    for rel in (
        "tls/ca.crt",
        "tls/device.crt",
        "tls/device.key",
        "agent.yaml",
        "system/xueliang-agent.service",
        "system/watchdog.conf",
        "system/journald.conf",
        "system/timesyncd.conf",
        "system/config.txt",
    ):
        assert f'"$SRC/{rel}"' in text and (bundle / rel).is_file(), rel


def test_label(bundle: Path) -> None:
    root = ET.fromstring((bundle / "label.svg").read_text())
    texts = "".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert bundle.name in texts and HOUSEHOLD in texts and "g0301" in texts and "赵家" in texts
    assert root.find(".//{http://www.w3.org/2000/svg}path") is not None  # the QR modules
    query = parse_qs(urlsplit(qr_payload(bundle.name, HOUSEHOLD, "g0301")).query)
    assert query == {"d": [bundle.name], "h": [HOUSEHOLD], "g": ["g0301"]}


def test_templates_refuse_missing_values_and_newlines() -> None:
    with pytest.raises(TemplateError, match="ntp_server"):
        render("timesyncd.conf", {"ntp_fallback": "x"})
    with pytest.raises(TemplateError, match="one line"):
        render_pi_files("ntp.example\nNTP=evil")

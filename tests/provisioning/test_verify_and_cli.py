"""The commissioning check against a real broker, and CLI input errors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from protocol.codec import encode
from protocol.messages import Event, Health, State
from protocol.topics import event_topic, health_topic, state_topic
from provisioning import dynsec
from provisioning.cli import main
from provisioning.townships import TownshipError, resolve_township
from tests.support.broker import run_broker
from tests.support.mqtt_clients import connect
from tests.support.provisioned_county import build_county

NOW_MS = 1_767_000_000_000


def _run_verify(state: Path, device_id: str, port: int, timeout: int, out: list[int]) -> threading.Thread:
    args = ["verify", device_id, "--state", str(state), "--broker", f"127.0.0.1:{port}", "--timeout", str(timeout)]
    thread = threading.Thread(target=lambda: out.append(main(args)))
    thread.start()
    return thread


def test_verify_passes_when_device_is_online_healthy_and_sees_someone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = build_county(tmp_path)
    dev = c.devices["HA"]
    with run_broker(c.conf(), port=c.port):
        agent = connect(c.port, client_id=dev.device_id, **dev.tls)
        agent.publish(state_topic(dev.device_id), encode(State(state="online", agent_version="0.1.0")), retain=True)
        rc: list[int] = []
        thread = _run_verify(c.state.root, dev.device_id, c.port, 20, rc)
        time.sleep(1.0)  # the installer is still walking up to the door
        agent.publish(
            health_topic(dev.device_id), encode(Health(time_ms=NOW_MS, camera="ok", camera_fps=10.0, clock="synced"))
        )
        agent.publish(
            event_topic(dev.device_id),
            encode(Event(event_id=1, kind="person", phase="start", time_ms=NOW_MS, score=87)),
        )
        thread.join(30)
        agent.close()
    out = capsys.readouterr().out
    assert rc == [0], out
    for line in ("PASS registry", "PASS broker", "PASS online", "PASS health", "PASS event: person start"):
        assert line in out, out
    c.engine.dispose()


def test_verify_fails_with_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = build_county(tmp_path)
    dev = c.devices["HB"]
    with run_broker(c.conf(), port=c.port):
        agent = connect(c.port, client_id=dev.device_id, **dev.tls)
        agent.publish(state_topic(dev.device_id), encode(State(state="online")), retain=True)
        rc: list[int] = []
        thread = _run_verify(c.state.root, dev.device_id, c.port, 3, rc)
        time.sleep(1.0)
        agent.publish(
            health_topic(dev.device_id),
            encode(Health(time_ms=NOW_MS, camera="error", camera_fps=0.0, clock="unsynced")),
        )
        thread.join(30)
        agent.close()
    out = capsys.readouterr().out
    assert rc == [1], out
    assert "PASS online" in out
    assert "FAIL health: camera error at 0 fps; clock unsynced" in out
    assert "FAIL event: no event yet" in out and "gave up after 3s" in out
    # Unregistered device: fails before touching the broker.
    assert main(["verify", "62062101011198777777", "--state", str(c.state.root), "--timeout", "1"]) == 1
    assert "FAIL registry: 62062101011198777777 is not registered" in capsys.readouterr().out
    c.engine.dispose()


def test_ca_init_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "s"
    assert main(["ca", "init", "--state", str(state), "--broker-host", "hub.local"]) == 0
    key = (state / "ca" / "ca.key").read_bytes()
    for name in ("ca.key", "server.key", "clients/hub.key", "clients/commission.key"):
        assert (state / "ca" / name).stat().st_mode & 0o777 == 0o600, name
    assert main(["ca", "init", "--state", str(state), "--broker-host", "hub.local"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (state / "ca" / "ca.key").read_bytes() == key
    assert main(["ca", "init", "--state", str(state), "--broker-host", "hub.local", "--force"]) == 0
    assert (state / "ca" / "ca.key").read_bytes() != key


def test_device_add_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "s"
    assert main(["ca", "init", "--state", str(state), "--broker-host", "hub.local"]) == 0
    base = ["device", "add", "--state", str(state), "--village", "v", "--household", "H1", "--group", "g1"]
    assert main([*base, "--township", "火星镇"]) == 2
    assert "unknown township '火星镇'" in capsys.readouterr().err
    assert main([*base, "--township", "01", "--lat", "38.5"]) == 2
    assert "both lat and lon" in capsys.readouterr().err
    assert main([*base, "--township", "01"]) == 0
    assert (
        main(
            [
                "device",
                "add",
                "--state",
                str(tmp_path / "nowhere"),
                "--township",
                "01",
                "--village",
                "v",
                "--household",
                "H1",
                "--group",
                "g1",
            ]
        )
        == 2
    )
    assert "not a provisioning state folder" in capsys.readouterr().err


def test_township_table() -> None:
    assert resolve_township("1") == ("01", "泉山镇")
    assert resolve_township("红沙梁") == ("07", "红沙梁镇")
    assert resolve_township("18") == ("18", "三雷镇")
    with pytest.raises(TownshipError):
        resolve_township("19")


def test_ca_init_checks_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ca", "init", "--state", str(tmp_path / "s"), "--broker-host", "bad host"]) == 2
    assert "'bad host' is not a hostname" in capsys.readouterr().err
    assert main(["ca", "init", "--state", str(tmp_path / "s"), "--broker-host", "h", "--hub-cn", "a/b"]) == 2
    assert "--hub-cn 'a/b'" in capsys.readouterr().err
    assert not (tmp_path / "s" / "ca" / "ca.key").exists()


def test_ca_client_adds_a_second_hub_identity_with_the_hub_role(tmp_path: Path) -> None:
    from provisioning.cli import main as provision

    state = tmp_path / "state"
    assert provision(["ca", "init", "--state", str(state), "--broker-host", "127.0.0.1"]) == 0
    assert provision(["broker-config", "--state", str(state), "--out", str(tmp_path / "broker")]) == 0
    assert provision(["ca", "client", "hub-2", "--state", str(state)]) == 0
    key = state / "ca" / "clients" / "hub-2.key"
    assert key.exists() and (key.stat().st_mode & 0o777) == 0o600
    doc = json.loads((tmp_path / "broker" / "dynamic-security.json").read_text())
    model = dynsec.from_document(doc)
    assert model.clients["hub-2"] == {dynsec.ROLE_HUB} == model.clients["hub"]
    assert (dynsec.SEND, "xl/v1/grp/+/alert") in model.roles[dynsec.ROLE_HUB]
    assert provision(["ca", "client", "hub-2", "--state", str(state)]) == 2  # not issued twice
    assert provision(["ca", "client", "12345", "--state", str(state)]) == 2  # would look like a device

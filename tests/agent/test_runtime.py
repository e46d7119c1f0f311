"""The whole device against a real TLS Mosquitto: ``xl-agent run`` and ``xl-agent check``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from agent.config import load
from agent.runtime import Agent
from protocol.codec import decode_ack, decode_event, decode_health, decode_state, encode
from protocol.messages import Alert
from protocol.topics import ack_topic, alert_topic, cmd_topic, event_topic, health_topic, state_topic
from tests.support.agent_yaml import write_config
from tests.support.broker import Broker, run_broker
from tests.support.tls import DEVICE, GROUP, Hub, Pki, make_pki, tls_config

ROOT = Path(__file__).resolve().parents[2]
NEIGHBOUR = "62062101011198000456"


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[Pki, Broker]]:
    p = make_pki(tmp_path / "pki")
    with run_broker(tls_config(p)) as broker:
        yield p, broker


def test_xl_agent_run_end_to_end_person_events(tls: tuple[Pki, Broker], tmp_path: Path) -> None:
    p, broker = tls
    hub = Hub(p, broker, ["xl/v1/+/+"])
    config = write_config(
        tmp_path,
        p,
        broker.port,
        camera={"source": "synthetic:walkthrough?seconds=12", "width": 640, "height": 360, "fps": 10},
        vision={"detect": {"num_threads": 1}},
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:

        def person(m: list[tuple[str, bytes]], phase: str) -> bool:
            return any(
                t == event_topic(DEVICE) and decode_event(pl).kind == "person" and decode_event(pl).phase == phase
                for t, pl in m
            )

        hub.wait(lambda m: person(m, "start"), timeout=25)
        hub.wait(lambda m: any(t == health_topic(DEVICE) for t, _ in m), timeout=10)
        # The config was validated in a child (xlconfig.isolated): pydantic's core, ~8 MB of RSS
        # kept for years, is not in the process that runs, nor is OpenCV (README, the footprint).
        mapped = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "pydantic_core" not in mapped and "cv2" not in mapped and "litert" in mapped
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
        hub.close()
    start = next(
        decode_event(pl) for t, pl in hub.messages if t == event_topic(DEVICE) and decode_event(pl).phase == "start"
    )
    assert start.kind == "person" and start.score >= 50 and start.event_id >> 32 == 0  # first boot
    health = next(decode_health(pl) for t, pl in hub.messages if t == health_topic(DEVICE))
    assert health.camera == "ok" and health.boot == 0 and health.agent_version
    states = [decode_state(pl).state for t, pl in hub.messages if t == state_topic(DEVICE)]
    assert states[0] == "online" and states[-1] == "offline"  # SIGTERM: a clean goodbye


def test_alert_button_ack_and_bad_command_over_tls(
    tls: tuple[Pki, Broker], tmp_path: Path, mock_pins: MockFactory
) -> None:
    p, broker = tls
    hub = Hub(p, broker, [ack_topic(DEVICE), state_topic(DEVICE), event_topic(DEVICE)])
    cfg = load(write_config(tmp_path, p, broker.port, gpio={"led": 17, "buzzer": 18, "button": 27}))
    stop = threading.Event()
    agent = Agent(cfg, stop)
    # A held panic button keeps the video around it (docs/clips.md): the writer tells the recorder.
    assert agent.clips is not None and agent.writer.on_panic == agent.clips.panic
    outcome: list[str] = []
    runner = threading.Thread(target=lambda: outcome.append(agent.run()))
    runner.start()
    try:
        hub.wait(lambda m: any(t == state_topic(DEVICE) and decode_state(pl).state == "online" for t, pl in m))
        raise_ = Alert(
            alert_id="a-20251126-0001",
            phase="raise",
            kind="panic",
            origin=NEIGHBOUR,
            household="HH0456",
            time_ms=1_764_138_100_350,
            text="张家",
        )
        hub.publish(alert_topic(GROUP), encode(raise_))
        buzzer = mock_pins.pin(18)
        deadline = time.monotonic() + 5
        while len(buzzer.states) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(buzzer.states) >= 4, "the buzzer should be beeping"
        button = mock_pins.pin(27)
        button.drive_low()
        time.sleep(0.1)
        button.drive_high()

        def acks(m: list[tuple[str, bytes]]) -> list[Any]:
            return [decode_ack(pl) for t, pl in m if t == ack_topic(DEVICE)]

        hub.wait(lambda m: any(a.of == "alert" for a in acks(m)))
        assert buzzer.state == 0
        hub.publish(cmd_topic(DEVICE), b'{"v":1,"id":"c-7f3b","op":"reboot"}')
        hub.wait(lambda m: any(a.ref_id == "c-7f3b" for a in acks(m)))
        bad = next(a for a in acks(hub.messages) if a.ref_id == "c-7f3b")
        assert not bad.ok and bad.error == "unknown op 'reboot'"
        ok = next(a for a in acks(hub.messages) if a.of == "alert")
        assert ok.ref_id == "a-20251126-0001" and ok.ok
        hub.publish(cmd_topic(DEVICE), b'{"v":1,"id":"c-8","op":"arm"}')
        hub.wait(lambda m: any(a.ref_id == "c-8" and a.ok for a in acks(m)))
        assert agent.arming.armed
        hub.publish(cmd_topic(DEVICE), b'{"v":1,"id":"c-9","op":"identify","a":{"s":5}}')
        hub.wait(lambda m: any(a.ref_id == "c-9" and a.ok for a in acks(m)))
        assert agent.panel.pattern == "identify"
        hub.publish(cmd_topic(DEVICE), b'{"v":1,"id":"c-10","op":"reload"}')
        runner.join(15)  # a valid config: the agent stops to rebuild itself from the file
        assert outcome == ["reload"]
        # Checked off the MQTT thread (a child process), answered before the stop flushed the outbox.
        hub.wait(lambda m: any(a.ref_id == "c-10" and a.ok for a in acks(m)))
    finally:
        stop.set()
        runner.join(15)
        hub.close()
    assert not runner.is_alive()


def test_check_passes_then_fails_when_broker_is_down(tls: tuple[Pki, Broker], tmp_path: Path) -> None:
    p, broker = tls
    config = write_config(tmp_path, p, broker.port, vision={})  # detection on: the model is loaded and run
    cmd = [sys.executable, "-m", "agent.cli", "check", "--config", str(config)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    good = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stdout + good.stderr
    lines = good.stdout.splitlines()
    for name in ("config", "certificate", "camera", "model", "broker"):
        assert any(line.startswith("PASS") and f" {name}" in line for line in lines), good.stdout
    broker.stop()
    bad = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert any(line.startswith("FAIL") and " broker" in line for line in bad.stdout.splitlines()), bad.stdout
    broken = write_config(tmp_path, p, broker.port, device={"id": "123", "group": GROUP, "household": "h"})
    worse = subprocess.run([*cmd[:-1], str(broken)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert worse.returncode == 1 and "FAIL config       device.id: found '123'" in worse.stdout


def test_run_refuses_a_malformed_config_naming_the_key(tmp_path: Path) -> None:
    p = make_pki(tmp_path / "pki")
    config = write_config(tmp_path, p, 8883, outbox={"max_rows": "lots"})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "agent.cli", "run", "--config", str(config)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "outbox.max_rows: found 'lots', expected an integer" in done.stderr
    os.chmod(p.key, 0o640)  # a key others can read is refused at start too
    fixed = write_config(tmp_path, p, 8883)
    done = subprocess.run([*cmd[:-1], str(fixed)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and "broker.key: found mode 0640" in done.stderr

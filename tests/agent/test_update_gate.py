"""The health gate (agent.update.commit): commit once the release has worked, else roll back.

The gate's inputs are the runtime's own counters (link connected, frames, model,
pipeline frames); here they are a small object the test moves, and the gate
acts on a real state.json and ``current`` link (releases that only look
installed: tests/support/update_release.py). ``restart_blocker`` is checked
against a real AlertDesk, Panel (gpiozero MockFactory) and Outbox.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from gpiozero.pins.mock import MockFactory

from agent.alerts import AlertDesk
from agent.clock import DeviceClock
from agent.config import GpioConfig
from agent.gpio import Panel
from agent.outbox import Outbox
from agent.outbox_writer import OutboxWriter
from agent.update import switch
from agent.update.commit import CHECKS, HealthGate, Probes, gate_for, restart_blocker, safe_to_restart
from agent.update.layout import Layout
from agent.update.state import State, load, write_state
from protocol.codec import encode
from protocol.messages import Alert
from tests.support.update_release import fake_release, install_guard

DEVICE = "62062101011198000123"
BUTTON = 27


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Device:
    """What the gate reads, moved by the test."""

    def __init__(self) -> None:
        self.connected = False
        self.frames = 0
        self.model = False
        self.processed = 0

    def probes(self) -> Probes:
        return Probes(
            connected=lambda: self.connected,
            frames=lambda: self.frames,
            model_loaded=lambda: self.model,
            processed=lambda: self.processed,
            model_error=lambda: None if self.model else "detector: FileNotFoundError: person.tflite",
        )


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    lay = Layout(tmp_path / "opt", tmp_path / "upd")
    install_guard(lay)
    for v in ("0.3.0", "0.4.0"):
        fake_release(lay, v)
    os.symlink("releases/0.3.0", lay.current)
    write_state(lay, State(current="0.3.0", good=["0.3.0"], us="ok"))
    switch.start_trial(lay, "0.4.0", commit_within_s=600, max_attempts=3)
    return lay


def test_no_gate_unless_this_release_is_on_trial(layout: Layout, tmp_path: Path) -> None:
    assert gate_for(layout, "0.3.0", 600, Device().probes()) is None
    assert gate_for(Layout(tmp_path / "none", tmp_path / "none-state"), "0.4.0", 600, Device().probes()) is None
    assert isinstance(gate_for(layout, "0.4.0", 600, Device().probes()), HealthGate)


def test_commit_once_all_four_have_happened_even_if_not_at_once(layout: Layout) -> None:
    dev, clock = Device(), Clock()
    gate = HealthGate(layout, "0.4.0", 600, dev.probes(), clock=clock)
    dev.connected = True
    assert gate.poll() is None
    dev.connected = False  # the link drops again: it did connect, that is latched
    dev.frames, dev.model = 12, True
    clock.t += 300
    assert gate.poll() is None and gate.missing() == ["pipeline run"]
    dev.processed = 3
    assert gate.poll() == "commit"
    state = load(layout)
    assert state.trial is None and state.good == ["0.4.0", "0.3.0"] and state.us == "ok"
    assert os.readlink(layout.current) == "releases/0.4.0"
    assert gate.poll() is None  # decided once


@pytest.mark.parametrize("never", CHECKS)
def test_rollback_when_one_check_never_happens_in_time(layout: Layout, never: str) -> None:
    dev, clock = Device(), Clock()
    gate = HealthGate(layout, "0.4.0", 600, dev.probes(), clock=clock)
    dev.connected, dev.frames, dev.model, dev.processed = (name != never for name in CHECKS)
    dev.frames, dev.processed = int(dev.frames) * 5, int(dev.processed) * 5
    clock.t += 599.9
    assert gate.poll() is None
    clock.t += 0.2
    assert gate.poll() == "rollback"
    state = load(layout)
    assert os.readlink(layout.current) == "releases/0.3.0" and state.current == "0.3.0" and state.us == "rb"
    assert state.failed["0.4.0"].startswith(f"health gate: no {never} within 600 s")
    if never == "model loaded":
        assert state.failed["0.4.0"].endswith("(detector: FileNotFoundError: person.tflite)")


def test_rollback_waits_while_a_restart_would_hurt(layout: Layout) -> None:
    dev, clock = Device(), Clock()
    gate = HealthGate(layout, "0.4.0", 600, dev.probes(), clock=clock)
    clock.t += 601
    blocker: list[str | None] = ["a 十户联防 alert is sounding"]
    assert gate.poll(lambda: blocker[0]) is None and load(layout).trial is not None
    blocker[0] = None
    assert gate.poll(lambda: blocker[0]) == "rollback"


def test_a_failing_state_write_is_retried_not_fatal(layout: Layout) -> None:
    dev, clock = Device(), Clock()
    dev.connected, dev.frames, dev.model, dev.processed = True, 1, True, 1
    gate = HealthGate(layout, "0.4.0", 600, dev.probes(), clock=clock)
    layout.lock_file.unlink()
    layout.lock_file.mkdir()  # the state directory cannot be locked: even root gets an OSError
    assert gate.poll() is None and "lock" in (gate.last_error or "")
    layout.lock_file.rmdir()
    assert gate.poll() == "commit"


def test_restart_blocker_reads_the_real_parts(tmp_path: Path, mock_pins: MockFactory) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    writer = OutboxWriter(DEVICE, box, boot=3, clock=DeviceClock(probe=lambda: "synced"))
    panel = Panel(GpioConfig(led=17, buzzer=18, button=BUTTON))
    desk = AlertDesk(DEVICE, panel, writer)
    agent = SimpleNamespace(desk=desk, panel=panel, outbox=box)
    try:
        assert restart_blocker(agent) is None and safe_to_restart(agent)
        desk.on_alert(_alert("raise"))
        assert restart_blocker(agent) == "a 十户联防 alert is sounding" and not safe_to_restart(agent)
        desk.on_alert(_alert("clear"))
        mock_pins.pin(BUTTON).drive_low()  # pressed (wired to ground)
        assert restart_blocker(agent) == "the panic button is pressed"
        mock_pins.pin(BUTTON).drive_high()
        assert restart_blocker(agent) is None
    finally:
        desk.close()
        panel.close()
        box.close()


def _alert(phase: str) -> bytes:
    neighbour = "62062101011198000456"
    return encode(Alert("a-1", phase, "panic", neighbour, "HH0456", 1_764_138_100_350, "张家"))

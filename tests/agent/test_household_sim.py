from __future__ import annotations

import threading
import time

import pytest

from agent.config import ConfigError, GpioConfig, parse
from agent.gpio import Panel
from agent.household_sim import SimulateConfig, SimulatedHousehold
from tests.support.wait import wait_for


def test_simulated_household_holds_for_panic_and_presses_to_acknowledge() -> None:
    holds: list[float] = []
    presses: list[float] = []
    panel = Panel(
        GpioConfig(led=17, buzzer=18, button=27, pin_factory="mock", hold_s=0.5),
        on_press=lambda: presses.append(time.monotonic()),
        on_hold=lambda: holds.append(time.monotonic()),
    )
    stop = threading.Event()
    sim = SimulatedHousehold(SimulateConfig(panic_at_s=0.3, ack_after_s=0.4), panel, 0.5, stop)
    sim.start()
    try:
        wait_for(lambda: holds, 6.0, "the long press to reach the real hold handler")
        assert presses == []  # a hold is a panic, not also an acknowledgement
        panel.alerting(True)  # a neighbour's alert sounds
        wait_for(lambda: presses, 6.0, "the household to acknowledge")
        assert sim.panics == 1 and sim.acks == 1
    finally:
        stop.set()
        panel.close()


def test_simulate_is_refused_on_a_real_panel() -> None:
    doc = {
        "device": {"id": "62062101011198000123", "group": "g1", "household": "HH1"},
        "broker": {"url": "mqtts://h:8883", "ca": "/c", "cert": "/d", "key": "/k"},
        "gpio": {"button": 27, "pin_factory": "lgpio"},
        "simulate": {"panic_at_s": 5},
    }
    with pytest.raises(ConfigError) as err:
        parse(doc)
    assert any(p.startswith("simulate:") and "mock" in p for p in err.value.problems)

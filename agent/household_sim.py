"""A simulated household at the panel, for the demo and end-to-end tests.

With ``gpio.pin_factory: mock`` there is no one to press the button, so this
presses it: a long press at ``panic_at_s`` (a panic), and a short press
``ack_after_s`` after a neighbour's alert starts sounding (the household
acknowledging it). It drives gpiozero's mock pins, so everything after the
pin — debouncing, hold detection, the alert desk, the outbox — is the real
code path. The config refuses ``simulate`` with a real pin factory.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Annotated, Any

from xlconfig import Field, Float

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulateConfig:
    panic_at_s: Annotated[
        Float | None, Field(ge=0, le=86_400, description="Seconds after start: hold the button (a panic).")
    ] = None
    ack_after_s: Annotated[
        Float | None, Field(ge=0, le=86_400, description="Seconds after an alert starts: press to acknowledge.")
    ] = None


class SimulatedHousehold:
    def __init__(self, cfg: SimulateConfig, panel: Any, hold_s: float, stop: threading.Event) -> None:
        self.cfg = cfg
        self.panel = panel
        self.hold_s = hold_s
        self.stop = stop
        self.panics = 0
        self.acks = 0
        self._thread = threading.Thread(target=self._run, name="household-sim", daemon=True)

    def start(self) -> None:
        if self.panel.button is None:
            log.warning("simulate: no button fitted, nothing to press")
            return
        self._thread.start()

    def _press(self, seconds: float) -> None:
        pin = self.panel.button.pin
        pin.drive_low()  # wired to ground: pressed reads low
        self.stop.wait(seconds)
        pin.drive_high()

    def _run(self) -> None:
        started = 0.0
        panic_due = self.cfg.panic_at_s
        alert_seen_at: float | None = None
        while not self.stop.wait(0.1):
            started += 0.1
            if panic_due is not None and started >= panic_due:
                panic_due = None
                log.info("simulate: household holds the panic button")
                self._press(self.hold_s + 0.5)
                self.panics += 1
                continue
            if self.cfg.ack_after_s is None:
                continue
            if self.panel.pattern == "alerting":
                alert_seen_at = started if alert_seen_at is None else alert_seen_at
                if started - alert_seen_at >= self.cfg.ack_after_s:
                    log.info("simulate: household presses the button to acknowledge the alert")
                    self._press(0.2)
                    self.acks += 1
                    alert_seen_at = None
            else:
                alert_seen_at = None

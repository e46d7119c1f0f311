"""The household panel on GPIO: status LED, buzzer, button, PIR (all optional).

gpiozero drives the pins; which pins (and which pin factory) comes from the
config, and a device with none of them still works: every method here is a
no-op for a part that is not fitted. Nothing else in the agent imports gpiozero.

LED patterns, most urgent first: ``alerting`` (a neighbour needs help: fast
blink), ``identify`` (the installer asked: medium blink), then the link state:
``booting`` (quick double-time blink), ``connected`` (steady on), ``offline``
(slow blink).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from agent.config import GpioConfig

log = logging.getLogger(__name__)

PATTERNS: dict[str, tuple[float, float] | None] = {
    "booting": (0.1, 0.1),
    "connected": None,  # steady on
    "offline": (1.0, 1.0),
    "identify": (0.25, 0.25),
    "alerting": (0.08, 0.08),
}
BUZZER_PATTERN = (0.5, 0.3)  # on/off seconds: urgent, but not a continuous tone


def make_pin_factory(name: str | None) -> Any:
    """The configured gpiozero pin factory, or None for gpiozero's own choice."""
    if name is None:
        return None
    if name == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if name == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    if name == "rpigpio":
        from gpiozero.pins.rpigpio import RPiGPIOFactory

        return RPiGPIOFactory()
    if name == "pigpio":
        from gpiozero.pins.pigpio import PiGPIOFactory

        return PiGPIOFactory()
    if name == "native":
        from gpiozero.pins.native import NativeFactory

        return NativeFactory()
    raise ValueError(f"unknown pin factory {name!r}")


class Panel:
    def __init__(
        self,
        cfg: GpioConfig,
        on_press: Callable[[], None] = lambda: None,
        on_hold: Callable[[], None] = lambda: None,
        on_pir: Callable[[], None] = lambda: None,
    ) -> None:
        self.cfg = cfg
        self._lock = threading.Lock()
        self._link_state = "booting"
        self._alerting = False
        self._identify_until = 0.0
        self._shown: str | None = None
        self._held = False
        self._closed = False
        self._identify_timer: threading.Timer | None = None
        self.led: Any = None
        self.buzzer: Any = None
        self.button: Any = None
        self.pir: Any = None
        self.pir_count = 0
        if not cfg.any:
            return
        import gpiozero

        factory = make_pin_factory(cfg.pin_factory)
        kw = {"pin_factory": factory} if factory is not None else {}
        if cfg.led is not None:
            self.led = gpiozero.LED(cfg.led, **kw)
        if cfg.buzzer is not None:
            self.buzzer = gpiozero.Buzzer(cfg.buzzer, **kw)
        if cfg.button is not None:
            # Wired to ground with the internal pull-up: pressed reads low.
            self.button = gpiozero.Button(cfg.button, pull_up=True, hold_time=cfg.hold_s, **kw)
            self.button.when_pressed = self._pressed
            self.button.when_held = self._make_held(on_hold)
            self.button.when_released = self._make_released(on_press)
        if cfg.pir is not None:
            self.pir = gpiozero.MotionSensor(cfg.pir, queue_len=1, **kw)
            self.pir.when_motion = self._make_pir(on_pir)
        self._render()

    # -- inputs ----------------------------------------------------------

    def _pressed(self) -> None:
        self._held = False

    def _make_held(self, on_hold: Callable[[], None]) -> Callable[[], None]:
        def held() -> None:
            self._held = True
            _safely(on_hold, "button hold")

        return held

    def _make_released(self, on_press: Callable[[], None]) -> Callable[[], None]:
        def released() -> None:
            if not self._held:  # a long press already did its job (panic)
                _safely(on_press, "button press")
            self._held = False

        return released

    def _make_pir(self, on_pir: Callable[[], None]) -> Callable[[], None]:
        def motion() -> None:
            self.pir_count += 1
            _safely(on_pir, "PIR")

        return motion

    # -- outputs ---------------------------------------------------------

    def set_link_state(self, state: str) -> None:
        """``booting``, ``connected`` or ``offline``."""
        with self._lock:
            self._link_state = state
            self._render()

    def alerting(self, on: bool) -> None:
        with self._lock:
            self._alerting = on
            self._render()
            if self.buzzer is not None and not self._closed:
                if on:
                    self.buzzer.beep(*BUZZER_PATTERN, background=True)
                else:
                    self.buzzer.off()

    def buzzer_off(self) -> None:
        """Silence the buzzer but keep the LED alerting (the buzzer time cap)."""
        with self._lock:
            if self.buzzer is not None and not self._closed:
                self.buzzer.off()

    def identify(self, seconds: float) -> None:
        with self._lock:
            self._identify_until = time.monotonic() + seconds
            self._render()
            if self._identify_timer is not None:
                self._identify_timer.cancel()
            self._identify_timer = threading.Timer(seconds + 0.05, self.refresh)
            self._identify_timer.daemon = True
            self._identify_timer.start()

    def refresh(self) -> None:
        with self._lock:
            self._render()

    @property
    def pattern(self) -> str:
        if self._alerting:
            return "alerting"
        if time.monotonic() < self._identify_until:
            return "identify"
        return self._link_state

    def _render(self) -> None:
        pattern = self.pattern
        if self.led is None or self._closed or pattern == self._shown:
            return
        self._shown = pattern
        timing = PATTERNS[pattern]
        if timing is None:
            self.led.on()
        else:
            self.led.blink(*timing, background=True)

    def close(self) -> None:
        with self._lock:
            # A late timer must not drive a closed pin (gpiozero would fail in its blink thread).
            self._closed = True
            if self._identify_timer is not None:
                self._identify_timer.cancel()
        for dev in (self.led, self.buzzer, self.button, self.pir):
            if dev is not None:
                try:
                    dev.close()
                except Exception as exc:  # closing must never stop a shutdown
                    log.debug("gpio close: %s", exc)


def _safely(fn: Callable[[], None], what: str) -> None:
    try:
        fn()
    except Exception:
        log.exception("%s handler failed", what)

"""十户联防 on the device: neighbours' alerts in, the household's button out.

An Alert ``raise`` on the group topic (not our own: the origin household is the
one that needs help, not the one to wake) sounds the buzzer and flashes the LED
until the household presses its button, which acknowledges every sounding
alert with an Ack through the outbox, or until the hub sends ``clear``. A long
press is a panic event at the highest outbox priority, with no detection in
between. Alerts arrive at least once (QoS 1, persistent session), so an alert
already answered is not sounded again.
"""

from __future__ import annotations

import collections
import logging
import threading

from agent.gpio import Panel
from agent.outbox_writer import OutboxWriter
from protocol.codec import decode_alert
from protocol.errors import ProtocolError

log = logging.getLogger(__name__)


class AlertDesk:
    def __init__(self, device_id: str, panel: Panel, writer: OutboxWriter, buzzer_max_s: float = 600.0) -> None:
        self.device_id = device_id
        self.panel = panel
        self.writer = writer
        self.buzzer_max_s = buzzer_max_s
        self._lock = threading.Lock()
        self.active: dict[str, str] = {}  # alert id -> kind
        self._answered: collections.deque[str] = collections.deque(maxlen=64)
        self._buzzer_timer: threading.Timer | None = None
        self.rejected = 0
        self.panics = 0

    def on_alert(self, payload: bytes) -> None:
        try:
            alert = decode_alert(payload)
        except ProtocolError as exc:
            self.rejected += 1
            log.warning("bad alert: %s", exc)
            return
        if alert.origin == self.device_id:
            return
        with self._lock:
            if alert.phase == "raise":
                if alert.alert_id in self._answered or alert.alert_id in self.active:
                    return
                self.active[alert.alert_id] = alert.kind
                log.warning("alert %s (%s) from %s", alert.alert_id, alert.kind, alert.household)
            else:
                self.active.pop(alert.alert_id, None)
                self._answered.append(alert.alert_id)
            self._show()

    def escalated(self, alert_id: str, kind: str, household: str) -> str | None:
        """The ``alert`` command (issue 21): another group's alert escalated to this household's
        owner, a 治安户长. It sounds as a group alert does, and the press that answers it sends the
        same alert ack, which stops the escalation at the hub. Not cleared by the other group's
        ``clear`` (this device does not hear that topic): the buzzer stops after ``buzzer_max_s``,
        the LED at the press."""
        with self._lock:
            if alert_id not in self._answered and alert_id not in self.active:
                self.active[alert_id] = kind
                log.warning("escalated alert %s (%s) from household %s", alert_id, kind, household)
                self._show()
        return None

    def on_press(self) -> None:
        """A short press: the household acknowledges what is sounding."""
        with self._lock:
            answered = list(self.active)
            self.active.clear()
            self._answered.extend(answered)
            self._show()
        for alert_id in answered:
            self.writer.ack("alert", alert_id, True)

    def on_hold(self) -> None:
        """A long press: the household itself needs help."""
        event = self.writer.panic()
        self.panics += 1
        log.warning("panic button: event %d", event.event_id)

    @property
    def sounding(self) -> bool:
        return bool(self.active)

    def _show(self) -> None:
        on = bool(self.active)
        self.panel.alerting(on)
        if self._buzzer_timer is not None:
            self._buzzer_timer.cancel()
            self._buzzer_timer = None
        if on:
            # A household away for the day should not come back to neighbours
            # complaining: the buzzer stops after a while, the LED keeps going.
            self._buzzer_timer = threading.Timer(self.buzzer_max_s, self.panel.buzzer_off)
            self._buzzer_timer.daemon = True
            self._buzzer_timer.start()

    def close(self) -> None:
        if self._buzzer_timer is not None:
            self._buzzer_timer.cancel()

"""十户联防 on the device with gpiozero's MockFactory: alert → buzzer → button → ack; panic."""

from __future__ import annotations

import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from agent import outbox as ob
from agent.alerts import AlertDesk
from agent.clock import DeviceClock
from agent.config import GpioConfig
from agent.gpio import Panel
from agent.outbox import Outbox
from agent.outbox_writer import OutboxWriter
from protocol.codec import decode_ack, decode_event, encode
from protocol.messages import Alert
from protocol.topics import ack_topic, event_topic
from tests.support.wait import wait_for

DEVICE = "62062101011198000123"
NEIGHBOUR = "62062101011198000456"
LED, BUZZER, BUTTON, PIR = 17, 18, 27, 22


def rig(tmp_path: Path, hold_s: float = 2.0, **pins: int | None) -> tuple[Panel, AlertDesk, Outbox]:
    box = Outbox(tmp_path / "o.sqlite3")
    writer = OutboxWriter(DEVICE, box, boot=3, clock=DeviceClock(probe=lambda: "synced"))
    desk_ref: list[AlertDesk] = []
    wanted = dict(led=LED, buzzer=BUZZER, button=BUTTON, pir=None) | pins
    panel = Panel(
        GpioConfig(hold_s=hold_s, **wanted),  # type: ignore[arg-type]
        on_press=lambda: desk_ref[0].on_press(),
        on_hold=lambda: desk_ref[0].on_hold(),
    )
    desk = AlertDesk(DEVICE, panel, writer)
    desk_ref.append(desk)
    return panel, desk, box


def alert(phase: str = "raise", origin: str = NEIGHBOUR, alert_id: str = "a-1") -> bytes:
    return encode(
        Alert(
            alert_id=alert_id,
            phase=phase,
            kind="panic",
            origin=origin,
            household="HH0456",
            time_ms=1_764_138_100_350,
            text="张家",
        )
    )


def buzzer_toggles(factory: MockFactory, window: float) -> int:
    pin = factory.pin(BUZZER)
    before = len(pin.states)
    time.sleep(window)
    return len(pin.states) - before


def press(factory: MockFactory, seconds: float) -> None:
    pin = factory.pin(BUTTON)
    pin.drive_low()
    time.sleep(seconds)
    pin.drive_high()


def test_alert_sounds_until_button_then_acks(tmp_path: Path, mock_pins: MockFactory) -> None:
    panel, desk, box = rig(tmp_path)
    assert buzzer_toggles(mock_pins, 0.3) == 0
    desk.on_alert(alert())
    assert desk.sounding and panel.pattern == "alerting"
    assert buzzer_toggles(mock_pins, 1.0) >= 2  # beeping
    assert box.depth == 0
    press(mock_pins, 0.1)
    wait_for(lambda: box.depth == 1)
    assert not desk.sounding and panel.pattern == "booting"
    assert mock_pins.pin(BUZZER).state == 0
    assert buzzer_toggles(mock_pins, 1.0) == 0  # silent after the press
    (msg,) = box.pending(10)
    ack = decode_ack(msg.payload)
    assert msg.topic == ack_topic(DEVICE) and ack.of == "alert" and ack.ref_id == "a-1" and ack.ok
    desk.on_alert(alert())  # re-delivery of an answered alert (QoS 1) stays quiet
    assert not desk.sounding
    panel.close()


def test_own_alert_ignored_and_clear_silences_without_ack(tmp_path: Path, mock_pins: MockFactory) -> None:
    panel, desk, box = rig(tmp_path)
    desk.on_alert(alert(origin=DEVICE))
    assert not desk.sounding
    desk.on_alert(b'{"v":1,"id":"x"')  # garbage: counted, no crash
    assert desk.rejected == 1
    desk.on_alert(alert(alert_id="a-2"))
    assert desk.sounding
    desk.on_alert(alert(phase="clear", alert_id="a-2"))
    assert not desk.sounding and mock_pins.pin(BUZZER).state == 0
    assert box.depth == 0
    panel.close()


def test_long_press_real_two_seconds_is_panic(tmp_path: Path, mock_pins: MockFactory) -> None:
    panel, desk, box = rig(tmp_path)  # the real default hold time
    assert panel.button.hold_time == 2.0
    box.put(event_topic(DEVICE), b"older person event", priority=ob.PERSON, kind="person")
    press(mock_pins, 1.2)  # a short-ish press is not a panic
    time.sleep(0.1)
    assert desk.panics == 0
    press(mock_pins, 2.4)
    wait_for(lambda: desk.panics == 1)
    first = box.pending(10)[0]  # panic jumps the queue
    event = decode_event(first.payload)
    assert first.priority == ob.PANIC and first.topic == event_topic(DEVICE)
    assert (event.kind, event.phase, event.score) == ("panic", "start", 100)
    assert event.event_id >> 32 == 3  # this boot
    assert not any(m.topic == ack_topic(DEVICE) for m in box.pending(10))  # a hold is not an ack
    panel.close()


def test_pir_counts_and_no_gpio_still_works(tmp_path: Path, mock_pins: MockFactory) -> None:
    fired: list[int] = []
    panel = Panel(GpioConfig(pir=PIR), on_pir=lambda: fired.append(1))
    # gpiozero fires on edges only once its sampling thread has seen the first (idle) state.
    assert panel.pir.wait_for_inactive(2)
    mock_pins.pin(PIR).drive_high()
    wait_for(lambda: fired == [1])
    assert panel.pir_count == 1
    panel.close()
    bare, desk, box = rig(tmp_path, led=None, buzzer=None, button=None)
    desk.on_alert(alert())
    assert desk.sounding and bare.pattern == "alerting"
    desk.on_press()  # e.g. pressed via a future app: still acks
    assert box.depth == 1
    bare.identify(0.2)
    bare.set_link_state("connected")
    bare.close()


def test_an_escalated_alert_command_sounds_and_the_press_acks_it(tmp_path: Path, mock_pins: MockFactory) -> None:
    """Issue 21: another group's alert, escalated to this 治安户长's device as an ``alert`` command."""
    from agent.commands import CommandPorts, Commands
    from agent.schedule import Arming
    from protocol.messages import Command

    panel, desk, box = rig(tmp_path)
    writer = OutboxWriter(DEVICE, box, boot=3, clock=DeviceClock(probe=lambda: "synced"))
    cmds = Commands(writer, Arming(tmp_path / "arming.json", "21:00", "06:00"), CommandPorts(alert=desk.escalated))
    args = {"id": "a-9", "k": "panic", "hh": "HH0789", "s": 2}
    ack = cmds.handle(encode(Command(command_id="c-9", op="alert", args=args)))
    assert ack.ok and desk.sounding and desk.active == {"a-9": "panic"}
    wait_for(lambda: buzzer_toggles(mock_pins, 0.3) > 0, 3, "the buzzer sounding")
    cmds.handle(encode(Command(command_id="c-10", op="alert", args=args)))  # re-delivered: sounds once
    assert list(desk.active) == ["a-9"]
    press(mock_pins, 0.1)
    wait_for(lambda: not desk.sounding, 3, "the press answering it")
    acks = [decode_ack(m.payload) for m in box.pending(10) if m.topic == ack_topic(DEVICE)]
    assert [(a.of, a.ref_id, a.ok) for a in acks if a.of == "alert"] == [("alert", "a-9", True)]
    cmds.handle(encode(Command(command_id="c-11", op="alert", args=args)))  # answered: not again
    assert not desk.sounding
    panel.close()

"""QoS and retain flags per channel: part of the contract, so both sides read
them from here instead of repeating numbers."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.topics import Channel


@dataclass(frozen=True, slots=True)
class Delivery:
    qos: int
    retain: bool
    via_outbox: bool  # the device stores it durably until PUBACK


DELIVERY: dict[Channel, Delivery] = {
    # At-least-once end to end: outbox + QoS 1; the hub dedups by (device, id, phase).
    Channel.EVENT: Delivery(qos=1, retain=False, via_outbox=True),
    Channel.SNAP: Delivery(qos=1, retain=False, via_outbox=True),
    Channel.ACK: Delivery(qos=1, retain=False, via_outbox=True),
    # A heartbeat is replaced by the next one; storing old ones on the SD card
    # during an outage would only replay stale numbers.
    Channel.HEALTH: Delivery(qos=0, retain=False, via_outbox=False),
    # Presence: retained, so a restarted hub learns every device's state at once.
    Channel.STATE: Delivery(qos=1, retain=True, via_outbox=False),
    # Down: QoS 1 into persistent sessions, so a device that was briefly
    # offline still gets the command or alert when it reconnects.
    Channel.CMD: Delivery(qos=1, retain=False, via_outbox=False),
    Channel.ALERT: Delivery(qos=1, retain=False, via_outbox=False),
    # QoS 1 so a receipt sent while the device is away waits in its session:
    # a lost receipt costs the device a re-send of what it covered.
    Channel.RECEIPT: Delivery(qos=1, retain=False, via_outbox=False),
}

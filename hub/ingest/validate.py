"""Decide what one inbound MQTT message is, or why it is rejected.

Pure apart from the registry lookup: no database writes, no MQTT. The order
of checks is cheapest first — topic, registry (in memory), then the payload
through the protocol codec, which checks the size before parsing.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.ingest.directory import DeviceInfo, Directory
from protocol import limits
from protocol.codec import Snapshot, decode, decode_snapshot
from protocol.errors import REASONS, ProtocolError
from protocol.messages import Ack, Event, Health, State
from protocol.topics import UPLINK, Channel, parse_topic

# Reasons the hub adds to the protocol's own, each a time series on the dashboard.
HUB_REASONS = frozenset({"unknown_device", "revoked_device", "wrong_channel", "decode_error"})
ALL_REASONS = REASONS | HUB_REASONS


@dataclass(frozen=True, slots=True)
class Inbound:
    """What the MQTT thread hands to the writer: nothing decoded yet."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_ms: int
    retained: bool = False
    link: int = 0  # which connection of the MQTT transport it came in on (acks go back on that one only)


@dataclass(frozen=True, slots=True)
class Accepted:
    device: DeviceInfo
    channel: Channel
    message: Event | Health | State | Ack | Snapshot
    received_ms: int
    time_ms: int  # the time the hub believes (device time if trusted, else receive time)
    device_time_ms: int | None
    time_trusted: bool
    retained: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    detail: str
    topic: str


def device_time_trusted(device_ms: int, received_ms: int, unsynced: bool = False) -> bool:
    """A Pi without RTC may report 1970 after boot, or jump ahead; such times are
    kept for diagnosis but the hub orders and reports by its own receive time."""
    if unsynced:
        return False
    return limits.MIN_SANE_TIME_MS <= device_ms <= received_ms + limits.MAX_CLOCK_AHEAD_MS


def validate(msg: Inbound, directory: Directory) -> Accepted | Rejected:
    try:
        topic = parse_topic(msg.topic)
    except ProtocolError as exc:
        return Rejected(exc.reason, exc.detail, msg.topic[:120])
    if topic.channel not in UPLINK or topic.device is None:
        return Rejected("wrong_channel", f"{topic.channel.value!r} is not an uplink channel", msg.topic)
    device = directory.device(topic.device)
    if device is None:
        return Rejected("unknown_device", f"device {topic.device} is not registered", msg.topic)
    if not device.active:
        return Rejected("revoked_device", f"device {topic.device} is revoked", msg.topic)
    try:
        if topic.channel is Channel.SNAP:
            message: Event | Health | State | Ack | Snapshot = decode_snapshot(msg.payload)
        else:
            decoded = decode(topic.channel, msg.payload)
            assert isinstance(decoded, Event | Health | State | Ack)
            message = decoded
    except ProtocolError as exc:
        return Rejected(exc.reason, exc.detail, msg.topic)
    except Exception as exc:  # the codec promises ProtocolError only; never let a bug stop ingest
        return Rejected("decode_error", f"{type(exc).__name__}: {str(exc)[:100]}", msg.topic)

    device_ms: int | None = getattr(message, "time_ms", None)
    unsynced = isinstance(message, Event) and message.clock_unsynced
    if isinstance(message, Health) and message.clock == "unsynced":
        unsynced = True
    trusted = device_ms is not None and device_time_trusted(device_ms, msg.received_ms, unsynced)
    return Accepted(
        device=device,
        channel=topic.channel,
        message=message,
        received_ms=msg.received_ms,
        time_ms=device_ms if trusted and device_ms is not None else msg.received_ms,
        device_time_ms=device_ms,
        time_trusted=trusted,
        retained=msg.retained,
    )

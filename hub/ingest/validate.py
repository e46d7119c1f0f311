"""Decide what one inbound MQTT message is, or why it is rejected.

Pure apart from the registry lookup: no database writes, no MQTT. The order
of checks is cheapest first — topic, registry (in memory), then the payload
through the protocol codec, which checks the size before parsing.
"""

from __future__ import annotations

from hub.core.directory import Directory
from hub.core.inbound import Accepted, Inbound, Rejected
from hub.core.items import EventItem, Snapshot
from protocol import limits
from protocol.codec import Snapshot as WireSnapshot
from protocol.codec import decode, decode_snapshot
from protocol.errors import ProtocolError
from protocol.messages import Ack, Event, Health, State
from protocol.topics import UPLINK, Channel, parse_topic


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
            message: Event | Health | State | Ack | WireSnapshot = decode_snapshot(msg.payload)
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
    time_ms = device_ms if trusted and device_ms is not None else msg.received_ms
    forward: EventItem | Snapshot | None = None
    try:
        if isinstance(message, Event):
            forward = _event_item(message, device.device_id, device.household_id, time_ms, trusted)
        elif isinstance(message, WireSnapshot):
            forward = Snapshot(message.jpeg, message.width, message.height, message.crop, message.box)
    except ValueError as exc:
        # The wire contract let it through but the platform items refuse it (an
        # empty crop box, say). Refused here, counted, rather than stored and
        # then failing the transaction that hands it over.
        reason = "bad_snapshot" if isinstance(message, WireSnapshot) else "bad_field"
        return Rejected(reason, f"not forwardable: {str(exc)[:100]}", msg.topic)
    return Accepted(
        device=device,
        channel=topic.channel,
        message=message,
        received_ms=msg.received_ms,
        time_ms=time_ms,
        device_time_ms=device_ms,
        time_trusted=trusted,
        retained=msg.retained,
        forward=forward,
    )


def _event_item(ev: Event, device_id: str, household_id: str, time_ms: int, trusted: bool) -> EventItem:
    return EventItem(
        device_id=device_id,
        event_id=ev.event_id,
        phase=ev.phase,
        kind=ev.kind,
        time_ms=time_ms,
        score=ev.score,
        bbox=ev.bbox,
        household_id=household_id,
        clock_unsynced=not trusted,
        zones=ev.zones,
        loiter_s=ev.loiter_s,
        profile=ev.profile,
    )

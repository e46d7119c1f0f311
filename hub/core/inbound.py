"""A message as the MQTT transport hands it to the hub, and the verdict on it.

Shared by the transport (which makes ``Inbound``), ingest (which decides
``Accepted`` or ``Rejected``), the rules (which read ``Accepted``) and the
metrics (one counter per reason).
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.core.directory import DeviceInfo
from hub.core.items import EventItem, Snapshot
from protocol.codec import Snapshot as WireSnapshot
from protocol.errors import REASONS
from protocol.messages import Ack, Event, Health, State
from protocol.topics import Channel

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
    message: Event | Health | State | Ack | WireSnapshot
    received_ms: int
    time_ms: int  # the time the hub believes (device time if trusted, else receive time)
    device_time_ms: int | None
    time_trusted: bool
    retained: bool = False
    # What forwarding gets of an event (the item, without its picture) or of a
    # snapshot (the picture). Built while validating, so a value the platform
    # items refuse rejects the message before anything is stored.
    forward: EventItem | Snapshot | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: str
    detail: str
    topic: str

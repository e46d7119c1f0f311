"""MQTT topic builders and the strict topic parser.

Up (device → hub):   xl/v1/<device>/{event,snap,health,state,ack}
Down (hub → device): xl/v1/<device>/{cmd,rcpt}, xl/v1/grp/<group>/alert

Anything else is rejected: the hub never guesses what an odd topic meant.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocol.errors import ProtocolError
from protocol.ids import is_device_id, parse_group_id

ROOT = "xl"
VERSION = "v1"
PREFIX = f"{ROOT}/{VERSION}"
GROUP_LEVEL = "grp"


class Channel(StrEnum):
    EVENT = "event"
    SNAP = "snap"
    HEALTH = "health"
    STATE = "state"
    ACK = "ack"
    CMD = "cmd"
    RECEIPT = "rcpt"  # the hub's end-to-end receipt: what it has committed
    ALERT = "alert"


UPLINK = frozenset({Channel.EVENT, Channel.SNAP, Channel.HEALTH, Channel.STATE, Channel.ACK})
# Per-device downlink: the broker lets a device subscribe to exactly these of
# its own, and the hub publish them (provisioning/broker_config.py).
DOWNLINK = frozenset({Channel.CMD, Channel.RECEIPT})
DEVICE_CHANNELS = UPLINK | DOWNLINK


@dataclass(frozen=True, slots=True)
class Topic:
    channel: Channel
    device: str | None = None  # set for device topics
    group: str | None = None  # set for group alert topics

    def __str__(self) -> str:
        if self.channel is Channel.ALERT:
            return f"{PREFIX}/{GROUP_LEVEL}/{self.group}/{Channel.ALERT.value}"
        return f"{PREFIX}/{self.device}/{self.channel.value}"


def device_topic(device: str, channel: Channel | str) -> str:
    ch = Channel(channel)
    if ch not in DEVICE_CHANNELS:
        raise ProtocolError("bad_topic", f"{ch.value!r} is not a per-device channel")
    if not is_device_id(device):
        raise ProtocolError("bad_device_id", f"not a 20-digit device ID: {device!r}")
    return f"{PREFIX}/{device}/{ch.value}"


def event_topic(device: str) -> str:
    return device_topic(device, Channel.EVENT)


def snap_topic(device: str) -> str:
    return device_topic(device, Channel.SNAP)


def health_topic(device: str) -> str:
    return device_topic(device, Channel.HEALTH)


def state_topic(device: str) -> str:
    return device_topic(device, Channel.STATE)


def ack_topic(device: str) -> str:
    return device_topic(device, Channel.ACK)


def cmd_topic(device: str) -> str:
    return device_topic(device, Channel.CMD)


def receipt_topic(device: str) -> str:
    return device_topic(device, Channel.RECEIPT)


def alert_topic(group: str) -> str:
    return f"{PREFIX}/{GROUP_LEVEL}/{parse_group_id(group)}/{Channel.ALERT.value}"


def uplink_filter(channel: Channel | str | None = None) -> str:
    """Subscription filter for every device's uplink (one channel or all)."""
    if channel is None:
        return f"{PREFIX}/+/+"
    return f"{PREFIX}/+/{Channel(channel).value}"


def shared(group: str, topic_filter: str) -> str:
    """An MQTT 5 shared subscription, so several hub workers split the load."""
    parse_group_id(group)
    return f"$share/{group}/{topic_filter}"


def parse_topic(topic: object) -> Topic:
    """Parse a concrete topic name; raise ProtocolError('bad_topic', …) otherwise."""
    if not isinstance(topic, str):
        raise ProtocolError("bad_topic", f"topic must be a string, got {type(topic).__name__}")
    shown = topic[:80]
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != ROOT or parts[1] != VERSION:
        raise ProtocolError("bad_topic", f"not an {PREFIX}/... topic: {shown!r}")
    if parts[2] == GROUP_LEVEL:
        if len(parts) != 5 or parts[4] != Channel.ALERT.value:
            raise ProtocolError("bad_topic", f"group topics are {PREFIX}/grp/<group>/alert: {shown!r}")
        try:
            group = parse_group_id(parts[3])
        except ProtocolError as exc:
            raise ProtocolError("bad_topic", exc.detail) from None
        return Topic(channel=Channel.ALERT, group=group)
    if len(parts) != 4:
        raise ProtocolError("bad_topic", f"device topics are {PREFIX}/<device>/<channel>: {shown!r}")
    device, leaf = parts[2], parts[3]
    try:
        channel = Channel(leaf)
    except ValueError:
        raise ProtocolError("bad_topic", f"unknown channel {leaf[:20]!r} in {shown!r}") from None
    if channel not in DEVICE_CHANNELS:
        raise ProtocolError("bad_topic", f"{leaf!r} is not a per-device channel: {shown!r}")
    if not is_device_id(device):
        raise ProtocolError("bad_topic", f"device level is not a 20-digit ID: {device[:40]!r}")
    return Topic(channel=channel, device=device)

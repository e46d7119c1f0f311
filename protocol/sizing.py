"""What a message costs on the wire: the MQTT 5 PUBLISH packet around it."""

from __future__ import annotations


def _varint_len(n: int) -> int:
    size = 1
    while n >= 128:
        n //= 128
        size += 1
    return size


def publish_packet_size(topic: str, payload: bytes, qos: int, properties_len: int = 0) -> int:
    """MQTT 5 PUBLISH: fixed header + topic + packet id (QoS>0) + properties + payload."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0)
    remaining += _varint_len(properties_len) + properties_len + len(payload)
    return 1 + _varint_len(remaining) + remaining

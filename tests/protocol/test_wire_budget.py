"""The size budget is part of the contract: a typical person event must stay
within 160 bytes on the wire (MQTT 5 PUBLISH with its topic)."""

from __future__ import annotations

from protocol import Event, encode, event_topic, make_event_id
from protocol.sizing import publish_packet_size


def test_typical_person_event_fits_the_budget() -> None:
    # Long-lived device: 10,000 agent starts (27 years of daily restarts), a million events in
    # one boot, the longest phase name, three-digit score, four-digit box values.
    worst_typical = Event(event_id=make_event_id(10_000, 1_000_000), kind="person", phase="update",
                          time_ms=4_000_000_000_000, score=100, bbox=(1000, 1000, 1000, 1000), count=3,
                          has_snapshot=True)
    size = publish_packet_size(event_topic("62062118011198999999"), encode(worst_typical), qos=1)
    assert size <= 160, size


def test_packet_size_formula_matches_the_mqtt5_layout() -> None:
    # 1 fixed header + 1 remaining length + (2+1 topic "a") + 2 packet id + 1 property length + 3 payload
    assert publish_packet_size("a", b"xyz", qos=1) == 11
    assert publish_packet_size("a", b"x" * 200, qos=0) == 1 + 2 + 3 + 1 + 200

"""The size budget is part of the contract: a typical person event, as a device
sends it (with its outbox number), stays within 160 bytes on the wire (MQTT 5
PUBLISH with its topic)."""

from __future__ import annotations

from protocol import Event, encode, event_topic, make_event_id
from protocol.sizing import publish_packet_size


def test_typical_person_event_fits_the_budget() -> None:
    # As a device sends it in its first years: with its outbox number "q" (about 100
    # kept messages a day: 99,999 is nearly three years of them).
    typical = Event(
        event_id=make_event_id(3, 41),
        kind="person",
        phase="start",
        time_ms=1_764_138_000_123,
        score=87,
        bbox=(112, 204, 331, 912),
        count=1,
        has_snapshot=True,
        seq=99_999,
    )
    size = publish_packet_size(event_topic("62062118011198999999"), encode(typical), qos=1)
    assert size <= 160, size


def test_a_long_lived_devices_worst_event_stays_near_the_budget() -> None:
    # 10,000 agent starts (27 years of daily restarts), a million events in one boot, ten
    # million kept messages, the longest phase name, three-digit score, four-digit box values.
    # The receipt's number costs up to 12 bytes over the 160 of the original budget.
    worst = Event(
        event_id=make_event_id(10_000, 1_000_000),
        kind="person",
        phase="update",
        time_ms=4_000_000_000_000,
        score=100,
        bbox=(1000, 1000, 1000, 1000),
        count=3,
        has_snapshot=True,
        seq=9_999_999,
    )
    size = publish_packet_size(event_topic("62062118011198999999"), encode(worst), qos=1)
    assert size <= 172, size


def test_packet_size_formula_matches_the_mqtt5_layout() -> None:
    # 1 fixed header + 1 remaining length + (2+1 topic "a") + 2 packet id + 1 property length + 3 payload
    assert publish_packet_size("a", b"xyz", qos=1) == 11
    assert publish_packet_size("a", b"x" * 200, qos=0) == 1 + 2 + 3 + 1 + 200

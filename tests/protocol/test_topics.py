from __future__ import annotations

import pytest

from protocol import Channel, ProtocolError, parse_topic
from protocol.topics import alert_topic, cmd_topic, device_topic, event_topic, shared, uplink_filter

DEV = "62062101011198000123"


@pytest.mark.parametrize("channel", ["event", "snap", "health", "state", "ack", "cmd"])
def test_device_topics_round_trip(channel: str) -> None:
    topic = device_topic(DEV, channel)
    assert topic == f"xl/v1/{DEV}/{channel}"
    parsed = parse_topic(topic)
    assert parsed.channel == Channel(channel) and parsed.device == DEV and str(parsed) == topic


def test_alert_topic_round_trip() -> None:
    assert alert_topic("g0101-03") == "xl/v1/grp/g0101-03/alert"
    parsed = parse_topic("xl/v1/grp/g0101-03/alert")
    assert parsed.channel is Channel.ALERT and parsed.group == "g0101-03"


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "xl/v1",
        f"xl/v2/{DEV}/event",
        f"xx/v1/{DEV}/event",
        f"xl/v1/{DEV}/events",
        f"xl/v1/{DEV}/event/",
        f"xl/v1/{DEV}/event/extra",
        "xl/v1/6206210101119800012/event",
        "xl/v1/+/event",
        "xl/v1/#",
        f"xl/v1/{DEV}/alert",
        "xl/v1/grp/g1/cmd",
        "xl/v1/grp/g1/alert/x",
        "xl/v1/grp/+/alert",
        "xl/v1/grp//alert",
        f"/xl/v1/{DEV}/event",
    ],
)
def test_anything_else_is_rejected(topic: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_topic(topic)
    assert err.value.reason == "bad_topic"


def test_builders_refuse_bad_parts() -> None:
    with pytest.raises(ProtocolError):
        event_topic("123")
    with pytest.raises(ProtocolError):
        alert_topic("a/b")
    with pytest.raises(ProtocolError):
        device_topic(DEV, Channel.ALERT)
    assert cmd_topic(DEV).endswith("/cmd")
    assert shared("hub", uplink_filter()) == "$share/hub/xl/v1/+/+"
    assert uplink_filter("state") == "xl/v1/+/state"

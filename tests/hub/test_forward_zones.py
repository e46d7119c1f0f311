"""The webhook body carries an event's zones, loitering and profile when the device sent them (issue 20)."""

from __future__ import annotations

import dataclasses

from hub.core.items import EventItem, item_from_json, item_to_json
from hub.forward.webhook import webhook_body
from tests.support.forward_items import person


def test_the_webhook_body_has_zone_keys_only_when_present() -> None:
    plain = person(1)
    zoned = dataclasses.replace(plain, zones=("路", "院门"), loiter_s=42, profile="night")
    body = webhook_body(zoned, include_snapshot=False)
    assert (body["zones"], body["loiter_s"], body["profile"]) == (["路", "院门"], 42, "night")
    old = webhook_body(plain, include_snapshot=False)
    assert not {"zones", "loiter_s", "profile"} & set(old)  # a device without zones: the body as before


def test_zone_keys_survive_the_outbox() -> None:
    zoned = dataclasses.replace(person(2), zones=("gate",), loiter_s=0, profile="day")
    back = item_from_json(item_to_json(zoned))
    assert isinstance(back, EventItem)
    assert (back.zones, back.loiter_s, back.profile) == (("gate",), 0, "day")
    assert item_from_json(item_to_json(person(3))) == person(3)

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import ProtocolError
from protocol.ids import (
    EVENT_ID_MAX,
    EventIdGenerator,
    allocate_device_id,
    make_device_id,
    make_event_id,
    parse_device_id,
    parse_group_id,
    split_event_id,
)


def test_device_id_parts_and_format() -> None:
    dev = parse_device_id("62062101011198000123")
    assert (dev.division, dev.township, dev.industry, dev.type_code, dev.network, dev.serial) == (
        "620621",
        "01",
        "01",
        "119",
        "8",
        123,
    )
    assert dev.centre == "62062101"
    assert str(dev) == "62062101011198000123"
    assert str(make_device_id(7, 42)) == "62062107011198000042"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("6206210101119800012", "exactly 20 ASCII digits"),
        ("620621010111980001234", "exactly 20 ASCII digits"),
        ("62062101011198OOO123", "exactly 20 ASCII digits"),
        ("６２０６２１０１０１１１９８０００１２３", "exactly 20 ASCII digits"),  # full-width digits
        (62062101011198000123, "must be a string"),
    ],
)
def test_bad_device_ids_say_what_is_wrong(text: object, needle: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_device_id(text)
    assert err.value.reason == "bad_device_id" and needle in str(err.value)


def test_make_device_id_validates_each_part() -> None:
    with pytest.raises(ProtocolError, match="township must be 2 digits"):
        make_device_id("1", 1)
    with pytest.raises(ProtocolError, match="serial must be"):
        make_device_id(1, 1_000_000)


def test_allocate_takes_max_plus_one_per_township_and_never_reuses() -> None:
    used = ["62062101011198000001", "62062101011198000007", "62062102011198000100", "junk"]
    assert str(allocate_device_id(1, used)) == "62062101011198000008"
    assert str(allocate_device_id("02", used)) == "62062102011198000101"
    assert str(allocate_device_id(3, used)) == "62062103011198000000"
    with pytest.raises(ProtocolError, match="no serials left"):
        allocate_device_id(1, ["62062101011198999999"])


@pytest.mark.parametrize("bad", ["", "a/b", "g+", "#", "-lead", "x" * 33, "组一", None])
def test_group_ids_are_single_safe_topic_levels(bad: object) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_group_id(bad)
    assert err.value.reason == "bad_group_id"


def test_event_ids_sort_by_boot_then_sequence() -> None:
    ids = []
    for boot in (1, 2, 3):
        gen = EventIdGenerator(boot)
        ids += [gen.next() for _ in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert split_event_id(ids[-1]) == (3, 4)
    assert make_event_id((1 << 21) - 1, (1 << 32) - 1) == EVENT_ID_MAX


def test_generator_rolls_into_next_boot_instead_of_repeating() -> None:
    gen = EventIdGenerator(5, start_seq=(1 << 32) - 1)
    a, b = gen.next(), gen.next()
    assert split_event_id(a) == (5, (1 << 32) - 1) and split_event_id(b) == (6, 0) and b > a


@given(st.integers(0, (1 << 21) - 1), st.integers(0, (1 << 32) - 1))
def test_event_id_round_trip(boot: int, seq: int) -> None:
    assert split_event_id(make_event_id(boot, seq)) == (boot, seq)

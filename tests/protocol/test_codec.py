from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import (
    REASONS,
    Ack,
    Alert,
    Channel,
    Command,
    Event,
    Health,
    ProtocolError,
    Snapshot,
    State,
    command_id_of,
    decode,
    decode_snapshot,
    encode,
    encode_snapshot,
    limits,
)
from protocol.ids import EVENT_ID_MAX

T = st.integers(limits.MIN_SANE_TIME_MS, limits.MAX_TIME_MS)
TOKEN = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,35}", fullmatch=True)
PERMILLE = st.integers(0, 1000)
# Text a database can store: no NUL (nor lone surrogates, which hypothesis leaves out anyway).
TEXT = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))


@st.composite
def boxes(draw: st.DrawFn) -> tuple[int, int, int, int]:
    x = sorted(draw(st.lists(PERMILLE, min_size=2, max_size=2)))
    y = sorted(draw(st.lists(PERMILLE, min_size=2, max_size=2)))
    return (x[0], y[0], x[1], y[1])


events = st.builds(
    Event,
    event_id=st.integers(0, EVENT_ID_MAX),
    kind=st.sampled_from(["motion", "person", "panic", "tamper"]),
    phase=st.sampled_from(["start", "update", "end"]),
    time_ms=T,
    score=st.integers(0, 100),
    bbox=st.none() | boxes(),
    zone=st.none() | st.text(TEXT, max_size=24),
    count=st.none() | st.integers(0, 100),
    has_snapshot=st.booleans(),
    duration_s=st.none() | st.integers(0, 7 * 24 * 3600),
    clock_unsynced=st.booleans(),
    zones=st.none() | st.lists(st.text(TEXT, min_size=1, max_size=24), min_size=1, max_size=8, unique=True).map(tuple),
    loiter_s=st.none() | st.integers(0, 7 * 24 * 3600),
    no_alert=st.booleans(),
    profile=st.none() | st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True),
)
one_decimal = st.integers(0, 9999).map(lambda x: x / 10)
healths = st.builds(
    Health,
    time_ms=T,
    uptime_s=st.none() | st.integers(0, 10**9),
    agent_version=st.none() | st.text(TEXT, max_size=32),
    cpu_temp_c=st.none() | one_decimal.filter(lambda x: x <= 150),
    throttled=st.none() | st.integers(0, 0xFFFFFFFF),
    camera=st.none() | st.sampled_from(["ok", "starting", "error", "off"]),
    camera_fps=st.none() | one_decimal,
    outbox_depth=st.none() | st.integers(0, 10**6),
    armed=st.none() | st.booleans(),
    rssi_dbm=st.none() | st.integers(-150, 0),
    clock=st.none() | st.sampled_from(["synced", "unsynced", "unknown"]),
    error=st.none() | st.text(TEXT, max_size=200),
    profile=st.none() | st.sampled_from(["day", "night", "away_2"]),
    config_rev=st.none() | st.integers(0, 2**31 - 1),
)
states = st.builds(State, state=st.sampled_from(["online", "offline"]), time_ms=st.none() | T)
commands = st.one_of(
    st.builds(Command, command_id=TOKEN, op=st.sampled_from(["arm", "disarm", "reload", "restart"])),
    st.builds(
        Command,
        command_id=TOKEN,
        op=st.just("schedule"),
        args=st.fixed_dictionaries(
            {
                "from": st.from_regex(r"([01][0-9]|2[0-3]):[0-5][0-9]", fullmatch=True),
                "to": st.from_regex(r"([01][0-9]|2[0-3]):[0-5][0-9]", fullmatch=True),
            }
        ),
    ),
    st.builds(
        Command, command_id=TOKEN, op=st.just("identify"), args=st.fixed_dictionaries({"s": st.integers(1, 300)})
    ),
    st.builds(
        Command,
        command_id=TOKEN,
        op=st.just("config"),
        args=st.fixed_dictionaries(
            {
                "rev": st.integers(1, 2**31 - 1),
                "vision": st.dictionaries(st.sampled_from(["masks", "zones"]), st.just([])),
            }
        ),
    ),
)
acks = st.builds(
    Ack,
    of=st.sampled_from(["cmd", "alert"]),
    ref_id=TOKEN,
    ok=st.booleans(),
    time_ms=T,
    error=st.none() | st.text(TEXT, max_size=100),
)
alerts = st.builds(
    Alert,
    alert_id=TOKEN,
    phase=st.sampled_from(["raise", "clear"]),
    kind=st.sampled_from(["panic", "person", "test"]),
    origin=st.from_regex(r"[0-9]{20}", fullmatch=True),
    household=st.text(TEXT, max_size=64),
    time_ms=T,
    text=st.none() | st.text(TEXT, max_size=64),
)


@given(st.one_of(events, healths, states, commands, acks, alerts))
def test_round_trip(message: object) -> None:
    channel = {Event: "event", Health: "health", State: "state", Command: "cmd", Ack: "ack", Alert: "alert"}[
        type(message)
    ]
    assert decode(channel, encode(message)) == message  # type: ignore[arg-type]


@given(st.binary(max_size=3000), st.sampled_from(["event", "health", "state", "cmd", "ack", "alert"]))
def test_random_bytes_raise_only_protocol_error(payload: bytes, channel: str) -> None:
    try:
        decode(channel, payload)
    except ProtocolError as exc:
        assert exc.reason in REASONS


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["event", "health", "state", "cmd", "ack", "alert"]),
    st.dictionaries(
        st.sampled_from(
            [
                "v",
                "id",
                "k",
                "p",
                "t",
                "s",
                "b",
                "z",
                "n",
                "sn",
                "st",
                "op",
                "a",
                "re",
                "ok",
                "ph",
                "o",
                "hh",
                "cam",
                "temp",
                "arm",
                "x",
            ]
        ),
        json_values,
    ),
)
def test_structured_garbage_raises_only_protocol_error(channel: str, obj: dict[str, object]) -> None:
    """Right keys, wrong values: the path where lax validators crash."""
    obj.setdefault("v", 1)
    try:
        decode(channel, json.dumps(obj).encode())
    except ProtocolError as exc:
        assert exc.reason in REASONS


GOOD = b'{"v":1,"id":1,"k":"person","p":"start","t":1764138000123,"s":87}'


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"x" * (limits.MAX_EVENT_BYTES + 1), "too_large"),
        (b"\xff\xfe", "not_utf8"),
        (b"{", "not_json"),
        (b"[1,2]", "not_object"),
        (b'{"v":1,"v":1}', "not_json"),
        (b'{"v":NaN}', "not_json"),
        (b'{"v":2,"id":1}', "bad_version"),
        (b'{"v":true}', "bad_version"),
        (b'{"id":1}', "bad_version"),
        (b'{"v":1,"k":"person","p":"start","t":1,"s":1}', "missing_field"),
        (GOOD.replace(b'"person"', b'"dog"'), "bad_field"),
        (GOOD.replace(b'"s":87', b'"s":101'), "bad_field"),
        (GOOD.replace(b'"s":87', b'"s":87.5'), "bad_field"),
        (GOOD.replace(b'"s":87', b'"s":true'), "bad_field"),
        (GOOD.replace(b'"id":1', b'"id":-1'), "bad_field"),
        (GOOD.replace(b'"id":1', b'"id":9007199254740992'), "bad_field"),
        (GOOD.replace(b'"id":1', b'"id":' + b"9" * 5000), "too_large"),
        (GOOD[:-1] + b',"b":[500,0,100,10]}', "bad_field"),
        (GOOD[:-1] + b',"b":[0,0,1000]}', "bad_field"),
    ],
)
def test_each_rejection_names_its_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode(Channel.EVENT, payload)
    assert err.value.reason == reason, err.value


def test_deep_nesting_is_a_protocol_error_not_a_recursion_crash() -> None:
    with pytest.raises(ProtocolError) as err:
        decode(Channel.HEALTH, b"[" * 2000 + b"]" * 2000)
    assert err.value.reason == "not_json"


def test_trailing_newline_is_not_a_device_id() -> None:
    from protocol import is_device_id

    assert not is_device_id("62062101011198000123\n")


def test_unknown_keys_are_ignored_within_a_version() -> None:
    assert decode("event", GOOD[:-1] + b',"future":{"x":1}}') == decode("event", GOOD)


def test_encoder_refuses_what_a_reader_would_reject() -> None:
    with pytest.raises(ProtocolError, match="too_large"):
        encode(Health(time_ms=1764138000123, error="x" * 5000))
    with pytest.raises(ProtocolError, match="unknown command op"):
        Command(command_id="c1", op="reboot")
    with pytest.raises(ProtocolError, match="takes no argument"):
        Command(command_id="c1", op="arm", args={"force": 1})
    with pytest.raises(ProtocolError):
        Command(command_id="c1", op="schedule", args={"from": "25:00", "to": "06:00"})


def test_command_id_is_recoverable_from_a_bad_command() -> None:
    assert command_id_of(b'{"v":1,"id":"c-9","op":"reboot"}') == "c-9"
    assert command_id_of(b"garbage") is None
    assert command_id_of(b'{"id":{"x":1}}') is None


JPEG = b"\xff\xd8" + bytes(range(256)) * 20 + b"\xff\xd9"


def test_snapshot_round_trip_and_overhead() -> None:
    snap = Snapshot(
        event_id=12884901929,
        phase="start",
        time_ms=1764138000123,
        width=320,
        height=180,
        jpeg=JPEG,
        crop=(100, 200, 400, 900),
    )
    data = encode_snapshot(snap)
    assert decode_snapshot(data) == snap
    assert len(data) - len(JPEG) < 100  # no base64: the header is the whole overhead


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "bad_snapshot"),
        (b"\x00", "bad_snapshot"),
        (b"\xff\xff" + b"{}", "bad_snapshot"),
        (b"\x00\x02{}" + JPEG, "bad_version"),
        (b"\x00\x02{}", "bad_version"),
        (b"\x00\x05[1,2]" + JPEG, "not_object"),
        (b"\x00\x00" + JPEG, "not_json"),
        (b"\x00" * 70000, "too_large"),
    ],
)
def test_bad_snapshots_are_rejected(payload: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode_snapshot(payload)
    assert err.value.reason == reason


def test_truncated_jpeg_is_rejected() -> None:
    snap = Snapshot(event_id=1, phase="start", time_ms=1764138000123, width=1, height=1, jpeg=JPEG)
    with pytest.raises(ProtocolError) as err:
        decode_snapshot(encode_snapshot(snap)[:-10])
    assert err.value.reason == "bad_snapshot"


@given(st.binary(max_size=2000))
def test_snapshot_fuzz_raises_only_protocol_error(payload: bytes) -> None:
    try:
        decode_snapshot(payload)
    except ProtocolError as exc:
        assert exc.reason in REASONS


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"zn": ["gate", "gate"]}, "twice"),
        ({"zn": [f"z{i}" for i in range(9)]}, "at most 8"),
        ({"zn": ["x" * 25]}, "1..24"),
        ({"zn": [""]}, "1..24"),
        ({"zn": "gate"}, "a list"),
        ({"na": 2}, "0 or 1"),
        ({"pf": "Night"}, "bad format"),
        ({"lo": -1}, "'lo'"),
    ],
)
def test_zone_keys_are_checked(extra: dict[str, object], fragment: str) -> None:
    base = {"v": 1, "id": 1, "k": "person", "p": "start", "t": limits.MIN_SANE_TIME_MS, "s": 80}
    with pytest.raises(ProtocolError, match=fragment):
        decode("event", json.dumps({**base, **extra}).encode())


def test_an_event_without_zone_rules_is_alertable_and_one_with_na_is_not() -> None:
    base = {"v": 1, "id": 1, "k": "person", "p": "start", "t": limits.MIN_SANE_TIME_MS, "s": 80}
    old = decode("event", json.dumps(base).encode())
    assert isinstance(old, Event) and old.alertable and old.zones is None
    new = decode("event", json.dumps({**base, "zn": ["road"], "na": 1, "pf": "night"}).encode())
    assert isinstance(new, Event) and not new.alertable and new.zones == ("road",) and new.profile == "night"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"vision": {}}, "'rev'"),
        ({"rev": 0, "vision": {}}, "'rev'"),
        ({"rev": 1}, "'vision'"),
        ({"rev": 1, "vision": []}, "'vision'"),
        ({"rev": 1, "vision": {}, "x": 1}, "no argument 'x'"),
    ],
)
def test_config_command_envelope_is_checked(args: dict[str, object], fragment: str) -> None:
    payload = json.dumps({"v": 1, "id": "c-1", "op": "config", "a": args}).encode()
    with pytest.raises(ProtocolError, match=fragment):
        decode("cmd", payload)


@pytest.mark.parametrize("text", ["a\\u0000b", "\\ud800", "a\\udfffb"])
@pytest.mark.parametrize("key", ["z", "zn"])
def test_text_no_database_can_store_is_refused(key: str, text: str) -> None:
    """NUL and lone surrogates (JSON escapes decode to them) would fail the hub's whole batch."""
    value = f'["{text}"]' if key == "zn" else f'"{text}"'
    payload = GOOD[:-1] + f',"{key}":{value}}}'.encode()
    with pytest.raises(ProtocolError) as err:
        decode("event", payload)
    assert err.value.reason == "bad_field"

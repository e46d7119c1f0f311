"""The over-the-air update additions to the wire (docs/ota.md section 2)."""

from __future__ import annotations

import pytest

from protocol import ProtocolError, decode_command, decode_health, encode
from protocol.messages import Command, Health


def test_update_command_round_trips_with_every_argument() -> None:
    payload = b'{"v":1,"id":"c-1","op":"update","a":{"ver":"0.3.0rc1","ro":"r-0042","dg":1,"f":0}}'
    cmd = decode_command(payload)
    assert cmd.op == "update" and cmd.args == {"ver": "0.3.0rc1", "ro": "r-0042", "dg": 1, "f": 0}
    assert encode(cmd) == payload


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ("{}", "'ver' is required"),
        ('{"ver":""}', "'ver'"),
        ('{"ver":"0.3.0; rm -rf /"}', "'ver'"),
        ('{"ver":"' + "1" * 33 + '"}', "longer than 32"),
        ('{"ver":"0.3.0","ro":"has space"}', "'ro'"),
        ('{"ver":"0.3.0","dg":2}', "'dg' must be 0 or 1"),
        ('{"ver":"0.3.0","f":"yes"}', "'f' must be 0 or 1"),
        ('{"ver":"0.3.0","reboot":1}', "takes no argument 'reboot'"),
    ],
)
def test_bad_update_arguments_are_refused_with_the_key_named(args: str, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        decode_command(b'{"v":1,"id":"c-1","op":"update","a":' + args.encode() + b"}")


def test_health_update_keys_round_trip_and_stay_optional() -> None:
    h = Health(
        time_ms=1764138120000,
        update_version="0.3.0",
        update_state="fail",
        update_error="tuf: snapshot.json expired",
        update_bytes=0,
        update_rollout="r-0042",
    )
    assert decode_health(encode(h)) == h
    plain = decode_health(b'{"v":1,"t":1764138120000}')
    assert plain.update_state is None and plain.update_version is None
    assert b"us" not in encode(plain)


@pytest.mark.parametrize(
    ("extra", "complaint"),
    [
        ('"us":"done"', "'us'='done' is not an update state"),
        ('"ub":-1', "'ub'=-1 is outside"),
        ('"ue":"' + "x" * 161 + '"', "'ue' is longer than 160"),
        ('"uv":"v1"', "'uv'"),
    ],
)
def test_bad_health_update_keys_are_refused(extra: str, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        decode_health(b'{"v":1,"t":1764138120000,' + extra.encode() + b"}")


def test_an_update_command_built_in_python_is_checked_too() -> None:
    with pytest.raises(ProtocolError, match="'ver' is required"):
        Command(command_id="c-2", op="update", args={"ro": "r-1"})

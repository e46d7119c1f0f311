"""The clip additions to the wire (docs/clips.md): the `clip` and `clips` ops and the health keys."""

from __future__ import annotations

import pytest

from protocol import ProtocolError, decode_command, decode_health, encode
from protocol.messages import Health


def test_clip_and_clips_round_trip() -> None:
    for payload in (
        b'{"v":1,"id":"c-1","op":"clip","a":{"id":12884901929}}',
        b'{"v":1,"id":"c-2","op":"clips","a":{"auto":["panic"],"daily":0}}',
        b'{"v":1,"id":"c-3","op":"clips","a":{"auto":[],"daily":20000000}}',
    ):
        assert encode(decode_command(payload)) == payload


@pytest.mark.parametrize(
    ("op", "args", "complaint"),
    [
        ("clip", "{}", "'id' is required"),
        ("clip", '{"id":"12"}', "'id' must be an integer"),
        ("clip", '{"id":-1}', "outside"),
        ("clip", '{"id":9007199254740992}', "outside"),
        ("clip", '{"id":1,"w":1}', "takes no argument 'w'"),
        ("clips", '{"daily":1}', "'auto' must be a list"),
        ("clips", '{"auto":["motion"],"daily":1}', "'motion'"),
        ("clips", '{"auto":[1],"daily":1}', "not one of"),
        ("clips", '{"auto":["panic"]}', "'daily' is required"),
        ("clips", '{"auto":["panic"],"daily":-5}', "outside"),
    ],
)
def test_bad_clip_arguments_are_refused_with_the_key_named(op: str, args: str, complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        decode_command(b'{"v":1,"id":"c-1","op":"' + op.encode() + b'","a":' + args.encode() + b"}")


def test_health_clip_keys_are_optional_and_bytes() -> None:
    h = Health(time_ms=1764138180000, clips=2, clip_bytes=1234, clip_upload_bytes=0)
    wire = encode(h)
    assert b'"cl":2,"clb":1234,"clu":0' in wire
    assert decode_health(wire) == h
    assert b"cl" not in encode(Health(time_ms=1764138180000))  # a device without clips says nothing
    with pytest.raises(ProtocolError, match="'clb'"):
        decode_health(b'{"v":1,"t":1764138180000,"clb":-1}')

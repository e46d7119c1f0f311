"""Every example in protocol/README.md decodes and re-encodes byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from protocol import codec, decode
from protocol.codec import dumps, loads_object

DOC = Path(__file__).resolve().parents[2] / "protocol" / "README.md"
BLOCK = re.compile(r"```json ([a-z-]+)\n(.*?)\n```", re.S)


def examples() -> list[tuple[str, str]]:
    found = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(found) >= 10, "the protocol document lost its examples"
    return found


@pytest.mark.parametrize(("channel", "text"), examples())
def test_example_round_trips(channel: str, text: str) -> None:
    payload = text.encode()
    if channel == "snap-header":
        jpeg = b"\xff\xd8" + b"\x00" * 100 + b"\xff\xd9"
        snap = codec.decode_snapshot(len(payload).to_bytes(2, "big") + payload + jpeg)
        assert snap.jpeg == jpeg
        header = loads_object(payload, 512)
        assert snap.event_id == header["id"] and (snap.width, snap.height) == (header["w"], header["h"])
        return
    message = decode(channel, payload)
    assert codec.encode(message) == dumps(loads_object(payload, 4096)), "example is not canonical"


def test_document_covers_every_channel() -> None:
    channels = {c for c, _ in examples()}
    assert channels >= {"event", "snap-header", "health", "state", "cmd", "ack", "alert", "rcpt"}

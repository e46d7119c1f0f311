"""Bytes ⇄ messages.

Codec: compact JSON (UTF-8, no spaces, short keys, integers where a float is
not needed). Why not CBOR or protobuf: a typical person event is ~100 bytes
of JSON payload and ~140 bytes on the wire with the MQTT header and topic —
already inside the 160-byte budget — while JSON keeps the contract stdlib-only
on the Pi, implementable by any vendor without a schema compiler, and
readable in ``mosquitto_sub`` when an installer debugs a link at a doorstep.
CBOR would save ~25 bytes an event; the topic (32 bytes) is the larger cost.

Snapshots are binary: a 2-byte big-endian header length, a compact JSON header,
then the JPEG bytes, so a picture is never base64-inflated by a third.

Decoding untrusted bytes raises only ProtocolError, after a size check that
comes before any parsing.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from protocol import limits
from protocol.errors import ProtocolError
from protocol.fields import opt_box, opt_int, req_enum, req_int
from protocol.ids import EVENT_ID_MAX
from protocol.messages import EVENT_PHASES, SEQ_MAX, Ack, Alert, Command, Event, Health, JsonMessage, State
from protocol.receipts import Receipt
from protocol.topics import Channel

_LIMITS: dict[Channel, int] = {
    Channel.EVENT: limits.MAX_EVENT_BYTES,
    Channel.HEALTH: limits.MAX_HEALTH_BYTES,
    Channel.STATE: limits.MAX_STATE_BYTES,
    Channel.ACK: limits.MAX_ACK_BYTES,
    Channel.CMD: limits.MAX_COMMAND_BYTES,
    Channel.ALERT: limits.MAX_ALERT_BYTES,
    Channel.SNAP: limits.MAX_SNAPSHOT_BYTES,
    Channel.RECEIPT: limits.MAX_RECEIPT_BYTES,
}
# Every JSON message, the hub's receipt included (receipts.py builds on messages.py).
AnyJson = JsonMessage | Receipt
_TYPES: dict[Channel, type[AnyJson]] = {
    Channel.EVENT: Event,
    Channel.HEALTH: Health,
    Channel.STATE: State,
    Channel.ACK: Ack,
    Channel.CMD: Command,
    Channel.ALERT: Alert,
    Channel.RECEIPT: Receipt,
}
_CHANNEL_OF: dict[type, Channel] = {cls: ch for ch, cls in _TYPES.items()}


def _reject_constant(name: str) -> Any:
    raise ProtocolError("not_json", f"{name} is not allowed")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ProtocolError("not_json", "duplicate key in object")
    return obj


# One decoder for every message: json.loads with hooks builds a new one per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def loads_object(payload: bytes, max_bytes: int) -> dict[str, Any]:
    """Parse a JSON object from untrusted bytes, enforcing the size limit first."""
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise ProtocolError("not_json", f"payload must be bytes, got {type(payload).__name__}")
    if len(payload) > max_bytes:
        raise ProtocolError("too_large", f"{len(payload)} bytes is over the {max_bytes}-byte limit")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError("not_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    try:
        obj = _DECODER.decode(text)
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, int-digit limit, nesting
        raise ProtocolError("not_json", str(exc)[:120]) from None
    if not isinstance(obj, dict):
        raise ProtocolError("not_object", f"top level is {type(obj).__name__}, not an object")
    return obj


def encode(message: AnyJson) -> bytes:
    """Serialise a JSON message; refuses to produce what a reader would reject."""
    data = dumps(message.to_wire())
    limit = _LIMITS[_CHANNEL_OF[type(message)]]
    if len(data) > limit:
        raise ProtocolError("too_large", f"{type(message).__name__} encodes to {len(data)} bytes")
    return data


def decode(channel: Channel | str, payload: bytes) -> AnyJson:
    """Decode the payload of a JSON channel (everything but ``snap``)."""
    ch = Channel(channel)
    if ch is Channel.SNAP:
        raise ProtocolError("bad_topic", "snapshots are binary: use decode_snapshot")
    obj = loads_object(payload, _LIMITS[ch])
    try:
        return _TYPES[ch].from_wire(obj)
    except ProtocolError:
        raise
    except Exception as exc:  # a validator bug must still not escape as another type
        raise ProtocolError("bad_field", f"{type(exc).__name__}: {str(exc)[:80]}") from None


def decode_receipt(payload: bytes) -> Receipt:
    msg = decode(Channel.RECEIPT, payload)
    assert isinstance(msg, Receipt)
    return msg


def decode_event(payload: bytes) -> Event:
    msg = decode(Channel.EVENT, payload)
    assert isinstance(msg, Event)
    return msg


def decode_health(payload: bytes) -> Health:
    msg = decode(Channel.HEALTH, payload)
    assert isinstance(msg, Health)
    return msg


def decode_state(payload: bytes) -> State:
    msg = decode(Channel.STATE, payload)
    assert isinstance(msg, State)
    return msg


def decode_command(payload: bytes) -> Command:
    msg = decode(Channel.CMD, payload)
    assert isinstance(msg, Command)
    return msg


def decode_ack(payload: bytes) -> Ack:
    msg = decode(Channel.ACK, payload)
    assert isinstance(msg, Ack)
    return msg


def decode_alert(payload: bytes) -> Alert:
    msg = decode(Channel.ALERT, payload)
    assert isinstance(msg, Alert)
    return msg


def command_id_of(payload: bytes) -> str | None:
    """Best-effort id of a command that failed to decode, so the device can
    still answer it with an error ack instead of staying silent."""
    try:
        obj = loads_object(payload, limits.MAX_COMMAND_BYTES)
    except ProtocolError:
        return None
    cid = obj.get("id")
    if isinstance(cid, str) and 0 < len(cid) <= limits.MAX_ID_LEN and cid.isprintable():
        return cid
    return None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A JPEG belonging to one phase of one event."""

    event_id: int
    phase: str
    time_ms: int
    width: int
    height: int
    jpeg: bytes
    crop: tuple[int, int, int, int] | None = None  # permille of the frame, when cropped
    # "b": the person's box in permille of the frame this picture was taken from.
    # The event's own box is the visit's at the moment it was sent, which may be
    # another frame; this one locates the person in this picture.
    box: tuple[int, int, int, int] | None = None
    seq: int | None = None  # "q": the device's outbox number (protocol/receipts.py)
    version: int = limits.SCHEMA_VERSION


def encode_snapshot(snap: Snapshot) -> bytes:
    header: dict[str, Any] = {
        "v": snap.version,
        "id": snap.event_id,
        "p": snap.phase,
        "t": snap.time_ms,
        "w": snap.width,
        "h": snap.height,
    }
    if snap.crop is not None:
        header["c"] = list(snap.crop)
    if snap.box is not None:
        header["b"] = list(snap.box)
    if snap.seq is not None:
        header["q"] = snap.seq
    head = dumps(header)
    _check_jpeg(snap.jpeg)
    data = len(head).to_bytes(2, "big") + head + snap.jpeg
    if len(data) > limits.MAX_SNAPSHOT_BYTES:
        raise ProtocolError("too_large", f"snapshot encodes to {len(data)} bytes")
    return data


def decode_snapshot(payload: bytes) -> Snapshot:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise ProtocolError("bad_snapshot", "payload must be bytes")
    payload = bytes(payload)
    if len(payload) > limits.MAX_SNAPSHOT_BYTES:
        raise ProtocolError("too_large", f"{len(payload)} bytes is over the snapshot limit")
    if len(payload) < 2:
        raise ProtocolError("bad_snapshot", "shorter than its length prefix")
    head_len = int.from_bytes(payload[:2], "big")
    if head_len > limits.MAX_SNAPSHOT_HEADER_BYTES or 2 + head_len > len(payload):
        raise ProtocolError("bad_snapshot", f"header length {head_len} is impossible")
    header = loads_object(payload[2 : 2 + head_len], limits.MAX_SNAPSHOT_HEADER_BYTES)
    version = header.get("v")
    # The type check first: a list or dict is unhashable and would raise TypeError in the set lookup.
    if isinstance(version, bool) or not isinstance(version, int) or version not in limits.SUPPORTED_VERSIONS:
        raise ProtocolError("bad_version", f"snapshot schema version {version!r:.20} not supported")
    jpeg = payload[2 + head_len :]
    _check_jpeg(jpeg)
    w = opt_int(header, "w", 1, 8192, required=True)
    h = opt_int(header, "h", 1, 8192, required=True)
    assert w is not None and h is not None
    return Snapshot(
        event_id=req_int(header, "id", 0, EVENT_ID_MAX),
        phase=req_enum(header, "p", EVENT_PHASES),
        time_ms=req_int(header, "t", 0, limits.MAX_TIME_MS),
        width=w,
        height=h,
        jpeg=jpeg,
        crop=opt_box(header, "c"),
        box=opt_box(header, "b"),
        seq=opt_int(header, "q", 1, SEQ_MAX),
        version=version,
    )


def _check_jpeg(data: bytes) -> None:
    # SOI at the start and EOI at the end: cheap, and catches truncation.
    if len(data) < 4 or data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9":
        raise ProtocolError("bad_snapshot", "not a complete JPEG (SOI/EOI markers missing)")


# -- the outbox number "q" (protocol/receipts.py) ----------------------------------

_KEPT = frozenset({Channel.EVENT, Channel.SNAP, Channel.ACK})  # the channels a device keeps until receipted


def with_seq(channel: Channel | str, payload: bytes, seq: int) -> bytes:
    """``payload`` re-encoded with its outbox number, so the hub's receipt can name it.

    The device stores a message before the outbox has numbered it, so the
    number is added when the message is sent (the same number every time)."""
    ch = Channel(channel)
    if ch not in _KEPT:
        raise ProtocolError("bad_topic", f"{ch.value!r} messages are not kept, so carry no outbox number")
    if ch is Channel.SNAP:
        return encode_snapshot(dataclasses.replace(decode_snapshot(payload), seq=seq))
    message = decode(ch, payload)
    assert isinstance(message, Event | Ack)
    return encode(dataclasses.replace(message, seq=seq))


def seq_of(channel: Channel | str, payload: bytes) -> int | None:
    """Best-effort outbox number of a kept message the hub rejects, so it can
    still be receipted (a message that can never be stored would otherwise be
    re-sent for ever)."""
    try:
        ch = Channel(channel)
        if ch not in _KEPT:
            return None
        if ch is Channel.SNAP:
            head_len = int.from_bytes(payload[:2], "big")
            obj = loads_object(payload[2 : 2 + head_len], limits.MAX_SNAPSHOT_HEADER_BYTES)
        else:
            obj = loads_object(payload, _LIMITS[ch])
    except (ProtocolError, ValueError, TypeError):
        return None
    seq = obj.get("q")
    if isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq <= SEQ_MAX:
        return seq
    return None

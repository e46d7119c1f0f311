"""What the hub forwards: an event (one phase of a visit) or a 十户联防 alert.

Items are validated when built, so a bad value fails in the ingest code that
made it, inside its transaction, rather than hours later in a retry loop. The
outbox stores an item as JSON (``item_to_json``); the JPEG travels base64 in
that JSON because it is a few KB and keeping it in the same row means a queued
item is complete on its own even if the snapshot store is pruned meanwhile.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from protocol.ids import EVENT_ID_MAX, is_device_id
from protocol.messages import ALERT_KINDS, ALERT_PHASES, EVENT_KINDS, EVENT_PHASES

MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024
MAX_ALERT_ID_LEN = 64


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A JPEG, its pixel size, and which part of the camera's frame it shows.

    ``crop`` is the device's crop box in permille of the full frame, or None
    when the picture is the whole frame. Event boxes are in permille of the
    full frame, so both the size and the crop are needed to say where the
    person is in this picture."""

    jpeg: bytes
    width: int
    height: int
    crop: tuple[int, int, int, int] | None = None
    # The person in the frame the picture was taken from (permille of the full
    # frame), when the device sent it; the event's box may come from another frame.
    box: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if not self.jpeg.startswith(b"\xff\xd8") or len(self.jpeg) > MAX_SNAPSHOT_BYTES:
            raise ValueError("snapshot must be a JPEG (starts with FFD8) of at most 2 MB")
        if not (0 < self.width <= 10_000 and 0 < self.height <= 10_000):
            raise ValueError(f"snapshot size {self.width}x{self.height} is out of range")
        for name, box in (("crop", self.crop), ("box", self.box)):
            if box is not None:
                x1, y1, x2, y2 = box
                if not (0 <= x1 < x2 <= 1000 and 0 <= y1 < y2 <= 1000):
                    raise ValueError(f"{name} must be a non-empty permille box: {box!r}")


@dataclass(frozen=True, slots=True)
class EventItem:
    device_id: str  # 20-digit national device code of the camera
    event_id: int  # protocol.ids event id (boot << 32 | seq)
    phase: str  # start | update | end
    kind: str  # motion | person | panic | tamper
    time_ms: int  # when it happened (device clock), ms since epoch UTC
    score: int  # 0..100
    bbox: tuple[int, int, int, int] | None = None  # x1, y1, x2, y2 in permille of the frame
    snapshot: Snapshot | None = None
    household_id: str | None = None  # context for the webhook; not sent to the 视图库
    clock_unsynced: bool = False  # the device said its clock was not NTP-synced

    def __post_init__(self) -> None:
        if not is_device_id(self.device_id):
            raise ValueError(f"device_id must be 20 digits, got {self.device_id!r}")
        if isinstance(self.event_id, bool) or not 0 <= self.event_id <= EVENT_ID_MAX:
            raise ValueError(f"event_id out of range: {self.event_id!r}")
        if self.phase not in EVENT_PHASES or self.kind not in EVENT_KINDS:
            raise ValueError(f"bad phase/kind {self.phase!r}/{self.kind!r}")
        if not 0 <= self.score <= 100 or self.time_ms < 0:
            raise ValueError("score must be 0..100 and time_ms non-negative")
        if self.bbox is not None:
            x1, y1, x2, y2 = self.bbox
            if not (0 <= x1 <= x2 <= 1000 and 0 <= y1 <= y2 <= 1000):
                raise ValueError(f"bbox must be permille with x1<=x2, y1<=y2: {self.bbox!r}")

    @property
    def key(self) -> str:
        """Idempotency key: the hub's own dedup key for events."""
        return f"{self.device_id}-{self.event_id}-{self.phase}"


@dataclass(frozen=True, slots=True)
class AlertItem:
    alert_id: str
    phase: str  # raise | clear
    kind: str  # panic | person | test
    origin: str  # device ID that triggered it
    household_id: str
    time_ms: int
    group_id: str | None = None
    text: str | None = None  # e.g. the household name shown to neighbours
    snapshot: Snapshot | None = None
    close_reason: str | None = None  # clear only: ack | timeout | operator
    response_ms: int | None = None  # clear only: first acknowledgement minus raise

    def __post_init__(self) -> None:
        if not self.alert_id or len(self.alert_id) > MAX_ALERT_ID_LEN:
            raise ValueError("alert_id must be 1..64 characters")
        if self.phase not in ALERT_PHASES or self.kind not in ALERT_KINDS:
            raise ValueError(f"bad alert phase/kind {self.phase!r}/{self.kind!r}")
        if not is_device_id(self.origin):
            raise ValueError(f"origin must be a 20-digit device ID, got {self.origin!r}")
        if self.time_ms < 0:
            raise ValueError("time_ms must be non-negative")

    @property
    def key(self) -> str:
        # raise and clear of one alert are two deliveries, so the phase is part of the key
        return f"alert-{self.alert_id}-{self.phase}"


ForwardItem = EventItem | AlertItem


def _snap_to_dict(snap: Snapshot | None) -> dict[str, Any] | None:
    if snap is None:
        return None
    out: dict[str, Any] = {"jpeg": base64.b64encode(snap.jpeg).decode("ascii"), "w": snap.width, "h": snap.height}
    if snap.crop is not None:
        out["c"] = list(snap.crop)
    if snap.box is not None:
        out["b"] = list(snap.box)
    return out


def _snap_from_dict(obj: dict[str, Any] | None) -> Snapshot | None:
    if obj is None:
        return None
    # Rows queued before the crop was kept have no "c": they read as whole frames, as they were sent.
    return Snapshot(
        base64.b64decode(obj["jpeg"], validate=True),
        int(obj["w"]),
        int(obj["h"]),
        box_of(obj.get("c")),
        box_of(obj.get("b")),
    )


def box_of(value: Any) -> tuple[int, int, int, int] | None:
    """A stored permille box (a JSON list), or None."""
    return (int(value[0]), int(value[1]), int(value[2]), int(value[3])) if value else None


def item_to_dict(item: ForwardItem) -> dict[str, Any]:
    if isinstance(item, EventItem):
        return {
            "type": "event",
            "device_id": item.device_id,
            "event_id": item.event_id,
            "phase": item.phase,
            "kind": item.kind,
            "time_ms": item.time_ms,
            "score": item.score,
            "bbox": list(item.bbox) if item.bbox is not None else None,
            "snapshot": _snap_to_dict(item.snapshot),
            "household_id": item.household_id,
            "clock_unsynced": item.clock_unsynced,
        }
    return {
        "type": "alert",
        "alert_id": item.alert_id,
        "phase": item.phase,
        "kind": item.kind,
        "origin": item.origin,
        "household_id": item.household_id,
        "time_ms": item.time_ms,
        "group_id": item.group_id,
        "text": item.text,
        "snapshot": _snap_to_dict(item.snapshot),
        "close_reason": item.close_reason,
        "response_ms": item.response_ms,
    }


def item_from_dict(obj: dict[str, Any]) -> ForwardItem:
    if obj["type"] == "event":
        bbox = obj.get("bbox")
        return EventItem(
            device_id=obj["device_id"],
            event_id=int(obj["event_id"]),
            phase=obj["phase"],
            kind=obj["kind"],
            time_ms=int(obj["time_ms"]),
            score=int(obj["score"]),
            bbox=(int(bbox[0]), int(bbox[1]), int(bbox[2]), int(bbox[3])) if bbox else None,
            snapshot=_snap_from_dict(obj.get("snapshot")),
            household_id=obj.get("household_id"),
            clock_unsynced=bool(obj.get("clock_unsynced", False)),
        )
    if obj["type"] == "alert":
        return AlertItem(
            alert_id=obj["alert_id"],
            phase=obj["phase"],
            kind=obj["kind"],
            origin=obj["origin"],
            household_id=obj["household_id"],
            time_ms=int(obj["time_ms"]),
            group_id=obj.get("group_id"),
            text=obj.get("text"),
            snapshot=_snap_from_dict(obj.get("snapshot")),
            close_reason=obj.get("close_reason"),
            response_ms=obj.get("response_ms"),
        )
    raise ValueError(f"unknown item type {obj.get('type')!r}")


def item_to_json(item: ForwardItem) -> str:
    return json.dumps(item_to_dict(item), ensure_ascii=False, separators=(",", ":"))


def item_from_json(text: str) -> ForwardItem:
    return item_from_dict(json.loads(text))

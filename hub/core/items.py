"""What the hub forwards: an event (one phase of a visit), a 十户联防 alert, or a visit's clip.

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
    # Issue 20, for the webhook (the 视图库 has no field for them): the zones the
    # visit had entered (wire `zn`), seconds loitered (`lo`), the profile (`pf`).
    zones: tuple[str, ...] | None = None
    loiter_s: int | None = None
    profile: str | None = None

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


MAX_CLIP_BYTES = 64 * 1024 * 1024  # far above a 30 s clip at 640x360 (about 2 MB); a bound, not a budget


@dataclass(frozen=True, slots=True)
class ClipPerson:
    """A person phase of the clip's visit that the 视图库 already has as a PersonObject.

    The geometry of that phase's picture (pixel size, crop, the device's box)
    is kept without the JPEG, so the VideoSlice can name the very PersonObject
    (same IDs, same box) without sending the picture a second time."""

    phase: str
    time_ms: int
    width: int
    height: int
    bbox: tuple[int, int, int, int] | None = None
    crop: tuple[int, int, int, int] | None = None
    box: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.phase not in EVENT_PHASES or self.time_ms < 0:
            raise ValueError(f"bad person phase/time {self.phase!r}/{self.time_ms!r}")
        if not (0 < self.width <= 10_000 and 0 < self.height <= 10_000):
            raise ValueError(f"picture size {self.width}x{self.height} is out of range")


@dataclass(frozen=True, slots=True)
class ClipItem:
    """A visit's video clip, stored at the hub (docs/clips.md), handed over by
    ``hub.clips`` in the transaction that indexes the file.

    The MP4 stays on the hub's disk (``path``); a sink reads it when it sends,
    so an outbox row stays small. ``detections`` are the device's, as stored:
    ``(t_ms, score, x1, y1, x2, y2)`` with the box in permille of the frame."""

    device_id: str
    event_id: int
    kind: str  # the visit's kind: person | panic | motion | tamper
    path: str  # the MP4 at the hub
    size: int  # bytes
    sha256: str
    start_ms: int
    end_ms: int
    time_ms: int  # the visit's start (the event's time), for IDs and the webhook
    detections: tuple[tuple[int, int, int, int, int, int], ...] = ()
    persons: tuple[ClipPerson, ...] = ()
    household_id: str | None = None

    def __post_init__(self) -> None:
        if not is_device_id(self.device_id):
            raise ValueError(f"device_id must be 20 digits, got {self.device_id!r}")
        if isinstance(self.event_id, bool) or not 0 <= self.event_id <= EVENT_ID_MAX:
            raise ValueError(f"event_id out of range: {self.event_id!r}")
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"bad kind {self.kind!r}")
        if not self.path or not 0 < self.size <= MAX_CLIP_BYTES:
            raise ValueError(f"a clip needs its path and 1..{MAX_CLIP_BYTES} bytes, got {self.size}")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError("sha256 must be 64 lowercase hex digits")
        if not 0 <= self.start_ms < self.end_ms or self.time_ms < 0:
            raise ValueError(f"clip times must be ordered: {self.start_ms}..{self.end_ms}")

    @property
    def key(self) -> str:
        # One clip per visit: a repeated upload of it forwards once.
        return f"clip-{self.device_id}-{self.event_id}"


@dataclass(frozen=True, slots=True)
class EscalationItem:
    """One notice of an escalation step to one contact on one channel (issue 21,
    docs/escalation.md), queued by ``hub.escalation`` for its own sinks only.

    It names the contact by id and carries no phone number: the sink reads the
    number when it sends, so no outbox row (kept a week, shown as a dead letter)
    holds personal information."""

    alert_id: str
    step: int  # 2..4 (step 1 is the alert's own publish to the group)
    channel: str  # webhook | mqtt
    role: str  # security_head | grid_worker | township_duty | county_desk
    contact_id: str
    kind: str  # panic | person | test
    origin: str  # the device that raised the alert
    household_id: str
    group_id: str
    raised_ms: int
    text: str | None = None  # the household's name, as neighbours see it

    def __post_init__(self) -> None:
        if not self.alert_id or len(self.alert_id) > MAX_ALERT_ID_LEN:
            raise ValueError("alert_id must be 1..64 characters")
        if self.step not in (2, 3, 4) or self.channel not in ("webhook", "mqtt"):
            raise ValueError(f"bad escalation step/channel {self.step!r}/{self.channel!r}")
        if not self.contact_id or len(self.contact_id) > 32 or self.kind not in ALERT_KINDS:
            raise ValueError("contact_id must be 1..32 characters and kind an alert kind")
        if not is_device_id(self.origin) or self.raised_ms < 0:
            raise ValueError(f"origin must be a 20-digit device ID, got {self.origin!r}")

    @property
    def key(self) -> str:
        return f"esc-{self.alert_id}-{self.step}-{self.channel}-{self.contact_id}"


ForwardItem = EventItem | AlertItem | ClipItem | EscalationItem


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
    if isinstance(item, ClipItem):
        return {
            "type": "clip",
            "device_id": item.device_id,
            "event_id": item.event_id,
            "kind": item.kind,
            "path": item.path,
            "size": item.size,
            "sha256": item.sha256,
            "start_ms": item.start_ms,
            "end_ms": item.end_ms,
            "time_ms": item.time_ms,
            "detections": [list(d) for d in item.detections],
            "persons": [
                {
                    "phase": p.phase,
                    "time_ms": p.time_ms,
                    "w": p.width,
                    "h": p.height,
                    "bbox": None if p.bbox is None else list(p.bbox),
                    "c": None if p.crop is None else list(p.crop),
                    "b": None if p.box is None else list(p.box),
                }
                for p in item.persons
            ],
            "household_id": item.household_id,
        }
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
            # Only when present: a device without zones sends the same body as before.
            **({"zones": list(item.zones)} if item.zones else {}),
            **({"loiter_s": item.loiter_s} if item.loiter_s is not None else {}),
            **({"profile": item.profile} if item.profile is not None else {}),
        }
    if isinstance(item, EscalationItem):
        return {
            "type": "escalation",
            "alert_id": item.alert_id,
            "step": item.step,
            "channel": item.channel,
            "role": item.role,
            "contact_id": item.contact_id,
            "kind": item.kind,
            "origin": item.origin,
            "household_id": item.household_id,
            "group_id": item.group_id,
            "raised_ms": item.raised_ms,
            "text": item.text,
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
            zones=tuple(obj["zones"]) if obj.get("zones") else None,
            loiter_s=int(obj["loiter_s"]) if obj.get("loiter_s") is not None else None,
            profile=obj.get("profile"),
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
    if obj["type"] == "clip":
        return clip_from_dict(obj)
    if obj["type"] == "escalation":
        return EscalationItem(
            alert_id=obj["alert_id"],
            step=int(obj["step"]),
            channel=obj["channel"],
            role=obj["role"],
            contact_id=obj["contact_id"],
            kind=obj["kind"],
            origin=obj["origin"],
            household_id=obj["household_id"],
            group_id=obj["group_id"],
            raised_ms=int(obj["raised_ms"]),
            text=obj.get("text"),
        )
    raise ValueError(f"unknown item type {obj.get('type')!r}")


def detection_of(value: Any) -> tuple[int, int, int, int, int, int]:
    """One stored detection ``[t_ms, score, x1, y1, x2, y2]``; ValueError if it is not six numbers."""
    if not isinstance(value, (list, tuple)) or len(value) != 6:
        raise ValueError(f"a detection is [t_ms, score, x1, y1, x2, y2], got {value!r:.60}")
    t, score, x1, y1, x2, y2 = (int(v) for v in value)
    return (t, score, x1, y1, x2, y2)


def clip_from_dict(obj: dict[str, Any]) -> ClipItem:
    return ClipItem(
        device_id=obj["device_id"],
        event_id=int(obj["event_id"]),
        kind=obj["kind"],
        path=obj["path"],
        size=int(obj["size"]),
        sha256=obj["sha256"],
        start_ms=int(obj["start_ms"]),
        end_ms=int(obj["end_ms"]),
        time_ms=int(obj["time_ms"]),
        detections=tuple(detection_of(d) for d in obj.get("detections") or ()),
        persons=tuple(
            ClipPerson(
                phase=p["phase"],
                time_ms=int(p["time_ms"]),
                width=int(p["w"]),
                height=int(p["h"]),
                bbox=box_of(p.get("bbox")),
                crop=box_of(p.get("c")),
                box=box_of(p.get("b")),
            )
            for p in obj.get("persons") or ()
        ),
        household_id=obj.get("household_id"),
    )


def item_to_json(item: ForwardItem) -> str:
    return json.dumps(item_to_dict(item), ensure_ascii=False, separators=(",", ":"))


def item_from_json(text: str) -> ForwardItem:
    return item_from_dict(json.loads(text))

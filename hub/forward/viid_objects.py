"""GA/T 1400 视图库 objects: IDs, times, the PersonObject and response statuses.

IDs (GA/T 1400.1):
- SourceID / ImageID, 41 digits: the capturing device's 20-digit ID, ``02``
  (image), ``YYYYMMDDhhmmss`` and a 5-digit sequence.
- PersonID, 48 digits: the 41-digit SourceID of the image the person was found
  in, ``01`` (person), and a 5-digit sequence.

The IDs are a pure function of the event (device, event id, phase, time), so
an item re-sent after a crash between "platform said OK" and "outbox marked
done" carries the same PersonID and the platform can treat it as a repeat.

Times are Asia/Shanghai. China has kept UTC+8 without daylight saving since
1991, so a fixed offset is exact and needs no tz database on the server.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol

from hub.core.items import EventItem, Snapshot
from protocol.ids import split_event_id

SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")
TYPE_IMAGE = "02"
TYPE_PERSON = "01"
IMAGE_TYPE_PERSON_CROP = "10"  # 人员图 (GA/T 1400.3 图像类型)
IMAGE_TYPE_SCENE = "14"  # 场景图
UNKNOWN = 2  # the Is… flags: 0 no, 1 yes, 2 unknown
IS_FLAGS = (
    "IsDriver",
    "IsForeigner",
    "IsSuspectedTerrorist",
    "IsCriminalInvolved",
    "IsDetainees",
    "IsVictim",
    "IsSuspiciousPerson",
)
_PHASE_INDEX = {"start": 0, "update": 1, "end": 2}
_TIME_RE = re.compile(r"^\d{14}$")


def viid_time(time_ms: int) -> str:
    return datetime.fromtimestamp(time_ms / 1000, SHANGHAI).strftime("%Y%m%d%H%M%S")


def parse_viid_time(text: str) -> int:
    """``YYYYMMDDhhmmss`` (Asia/Shanghai) to ms since the epoch; ValueError if malformed."""
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise ValueError(f"not a YYYYMMDDhhmmss time: {text!r}")
    local = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=SHANGHAI)
    return int(local.astimezone(UTC).timestamp() * 1000)


def event_serial(item: EventItem) -> int:
    """A 5-digit sequence for the event's IDs, unique per device within a second
    in practice: the event's sequence number and phase, modulo 100,000."""
    return phase_serial(item.event_id, item.phase)


def phase_serial(event_id: int, phase: str) -> int:
    _boot, seq = split_event_id(event_id)
    return (seq * 3 + _PHASE_INDEX[phase]) % 100_000


def image_id(device_id: str, time_ms: int, serial: int) -> str:
    return f"{device_id}{TYPE_IMAGE}{viid_time(time_ms)}{serial % 100_000:05d}"


def person_id(source_id: str, serial: int) -> str:
    return f"{source_id}{TYPE_PERSON}{serial % 100_000:05d}"


class Picture(Protocol):
    """A picture's geometry: a ``Snapshot``, or a clip's ``ClipPerson`` (which has no JPEG)."""

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def crop(self) -> tuple[int, int, int, int] | None: ...


def box_in_picture(bbox: tuple[int, int, int, int] | None, snap: Picture) -> tuple[int, int, int, int]:
    """The event's box (permille of the camera's frame) in the picture's own pixels.

    The device usually sends a crop around the person, so the frame box has to
    be moved into the crop before it is scaled to the JPEG's size; scaling the
    frame box straight to the crop's size put it far off the person. No box
    means the whole picture."""
    x1, y1, x2, y2 = bbox if bbox is not None else (0, 0, 1000, 1000)
    cx1, cy1, cx2, cy2 = snap.crop if snap.crop is not None else (0, 0, 1000, 1000)

    def px(permille: int, lo: int, hi: int, size: int) -> int:
        return min(size - 1, max(0, round((permille - lo) * size / (hi - lo))))

    return (
        px(x1, cx1, cx2, snap.width),
        px(y1, cy1, cy2, snap.height),
        px(x2, cx1, cx2, snap.width),
        px(y2, cy1, cy2, snap.height),
    )


def image_type(snap: Snapshot) -> str:
    """GA/T 1400 image type of the picture: 10 (人员图) for a crop around the
    person, 14 (场景图) for the camera's whole frame."""
    return IMAGE_TYPE_PERSON_CROP if snap.crop is not None else IMAGE_TYPE_SCENE


def person_object(item: EventItem, *, event_sort: int) -> dict[str, Any]:
    """The PersonObject for a person event with its snapshot.

    The snapshot is the person's source image (its ImageID is the SourceID), so
    the box is given in that picture's pixels. The hub holds one picture per
    event phase — the device's crop, or its whole frame when it does not crop —
    so one SubImageInfoObject is sent, typed as what it is."""
    snap = item.snapshot
    if snap is None:
        raise ValueError("a 视图库 person record needs the snapshot (for pixels and the image)")
    person = person_fields(item.device_id, item.event_id, item.phase, item.time_ms, item.bbox, snap, snap.box)
    source, shot = person["SourceID"], person["PersonAppearTime"]
    person["SubImageList"] = {
        "SubImageInfoObject": [
            {
                "ImageID": source,
                "EventSort": event_sort,
                "DeviceID": item.device_id,
                "StoragePath": "",
                "Type": image_type(snap),
                "FileFormat": "Jpeg",
                "ShotTime": shot,
                "Width": snap.width,
                "Height": snap.height,
                "Data": base64.b64encode(snap.jpeg).decode("ascii"),
            }
        ]
    }
    return person


def person_fields(
    device_id: str,
    event_id: int,
    phase: str,
    time_ms: int,
    bbox: tuple[int, int, int, int] | None,
    picture: Picture,
    picture_box: tuple[int, int, int, int] | None,
) -> dict[str, Any]:
    """The PersonObject without its images: IDs, box and flags, a pure function
    of the event phase and its picture's geometry. A VideoSlice names the same
    person with it (hub.forward.viid_video), so both carry the same PersonID."""
    serial = phase_serial(event_id, phase)
    source = image_id(device_id, time_ms, serial)
    # The device's box for this very picture when it sent one: the event's box
    # is the visit's when the event was sent, and the person may have moved since
    # the best frame, which the picture shows.
    left, top, right, bottom = box_in_picture(picture_box or bbox, picture)
    person: dict[str, Any] = {
        "PersonID": person_id(source, serial),
        "InfoKind": 1,  # 自动采集: found by the detector, not entered by a person
        "SourceID": source,
        "DeviceID": device_id,
        "LeftTopX": left,
        "LeftTopY": top,
        "RightBtmX": right,
        "RightBtmY": bottom,
        "PersonAppearTime": viid_time(time_ms),
    }
    # A household camera knows none of these facts; 2 (unknown) is the honest value.
    person.update({flag: UNKNOWN for flag in IS_FLAGS})
    return person


@dataclass(frozen=True, slots=True)
class ResponseStatus:
    id: str | None
    request_url: str | None
    status_code: int
    status_string: str
    local_time: str | None

    @property
    def ok(self) -> bool:
        return self.status_code == 0


def _status(obj: Any) -> ResponseStatus:
    if not isinstance(obj, dict):
        raise ValueError("ResponseStatusObject is not an object")
    code = obj.get("StatusCode")
    if isinstance(code, str) and code.strip().lstrip("-").isdigit():
        code = int(code.strip())
    if isinstance(code, bool) or not isinstance(code, int):
        raise ValueError(f"StatusCode must be a number, got {code!r:.40}")
    return ResponseStatus(
        id=None if obj.get("Id") is None else str(obj.get("Id")),
        request_url=obj.get("RequestURL"),
        status_code=code,
        status_string=str(obj.get("StatusString") or ""),
        local_time=obj.get("LocalTime"),
    )


def parse_response_statuses(body: Any) -> list[ResponseStatus]:
    """Accept ``{"ResponseStatusObject": {…}}`` or ``{"ResponseStatusListObject":
    {"ResponseStatusObject": [{…}, …]}}`` (a lone object inside the list form too)."""
    if not isinstance(body, dict):
        raise ValueError("response body is not a JSON object")
    if "ResponseStatusListObject" in body:
        inner = body["ResponseStatusListObject"]
        items = inner.get("ResponseStatusObject") if isinstance(inner, dict) else None
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list) or not items:
            raise ValueError("ResponseStatusListObject holds no ResponseStatusObject")
        return [_status(x) for x in items]
    if "ResponseStatusObject" in body:
        return [_status(body["ResponseStatusObject"])]
    raise ValueError("no ResponseStatusObject in the response")

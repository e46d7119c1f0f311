"""The GA/T 1400 VideoSliceObject of a visit's clip (视频片段), linked to its PersonObjects.

VideoID, 41 digits (GA/T 1400.1): the camera's 20-digit ID, ``01`` (video
slice), the clip's begin time ``YYYYMMDDhhmmss`` and a 5-digit sequence (the
event's sequence number), so a re-send after a crash carries the same ID.

The object is ``VideoSliceInfo`` (the 视频片段 record), ``Data`` (the MP4,
base64: the hub's clip store is on the county intranet behind operator
logins, so the platform could not fetch a StoragePath link itself) and, when
the visit's person phases were forwarded, ``PersonList`` with those very
PersonObjects: same PersonID, SourceID and box, without their pictures (the
platform has them from /VIID/Persons). That shared PersonID is the link the
platform joins on; a VideoSlice of a panic or a motion visit has no PersonList.

Codes (GA/T 1400.3 code lists; ``event_sort`` and ``video_source`` vary
between platforms, so they come from the config):
- ``FileFormat`` "Mp4" (视频文件格式), ``CodedFormat`` "2" (H.264),
- ``AudioFlag`` 0 (the devices record no sound), ``IsAbstractVideo`` false
  (a cut of the original recording, not a synopsis), ``VideoProcFlag`` 0
  (remuxed at keyframes, never re-encoded; privacy masks are applied before
  encoding, at capture),
- ``FileHash`` the file's MD5, as GA/T 1400.3 defines it (the hub checks
  uploads with SHA-256; the platform wants MD5).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from hub.core.items import ClipItem
from hub.forward.mp4info import mp4_info
from hub.forward.viid_objects import person_fields, viid_time
from protocol.ids import split_event_id

TYPE_VIDEO = "01"
FILE_FORMAT_MP4 = "Mp4"
CODED_FORMAT_H264 = "2"
H264_ENTRIES = ("avc1", "avc3")


def video_id(device_id: str, begin_ms: int, serial: int) -> str:
    return f"{device_id}{TYPE_VIDEO}{viid_time(begin_ms)}{serial % 100_000:05d}"


def video_slice_object(item: ClipItem, mp4: bytes, *, event_sort: int, video_source: str) -> dict[str, Any]:
    """The VideoSliceObject for ``item`` with the clip's bytes; ValueError if they are not an H.264 MP4
    of the size and hash the hub stored."""
    if len(mp4) != item.size or hashlib.sha256(mp4).hexdigest() != item.sha256:
        raise ValueError(f"clip file of event {item.event_id} is not the one stored ({len(mp4)} B)")
    info = mp4_info(mp4)
    if info.codec not in H264_ENTRIES:
        raise ValueError(f"clip is {info.codec or 'an unknown codec'}, not H.264")
    _boot, seq = split_event_id(item.event_id)
    slice_info: dict[str, Any] = {
        "VideoID": video_id(item.device_id, item.start_ms, seq),
        "InfoKind": 1,  # 自动采集
        "VideoSource": video_source,
        "IsAbstractVideo": False,
        "EventSort": event_sort,
        "DeviceID": item.device_id,
        "StoragePath": "",
        "FileHash": hashlib.md5(mp4).hexdigest(),  # GA/T 1400.3 names MD5 for FileHash
        "FileFormat": FILE_FORMAT_MP4,
        "CodedFormat": CODED_FORMAT_H264,
        "AudioFlag": 0,
        "VideoLen": round(info.duration_s, 3),
        "BeginTime": viid_time(item.start_ms),
        # From the file's own duration, so EndTime and VideoLen always agree (the device's
        # end is where it asked the cut to end; the cut itself ends on a keyframe).
        "EndTime": viid_time(item.start_ms + round(info.duration_s * 1000)),
        "Width": info.width,
        "Height": info.height,
        "VideoProcFlag": 0,
        "FileSize": item.size,
    }
    obj: dict[str, Any] = {"VideoSliceInfo": slice_info}
    if item.persons:
        obj["PersonList"] = {
            "PersonObject": [
                person_fields(item.device_id, item.event_id, p.phase, p.time_ms, p.bbox, p, p.box) for p in item.persons
            ]
        }
    obj["Data"] = base64.b64encode(mp4).decode("ascii")
    return obj

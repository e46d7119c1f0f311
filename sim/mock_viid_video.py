"""The strict 视图库's check of a VideoSliceObject (/VIID/VideoSlices), apart from
``sim.mock_viid`` so that file stays about persons and the session.

What it holds a capture device's 视频片段 to (GA/T 1400.3, the fields a
platform files a clip by): every field below present and nothing unknown;
VideoID 41 digits, the camera's ID, ``01`` (video), a valid time and the
sequence; BeginTime no later than EndTime and VideoLen agreeing with them;
the Data an MP4 whose size and MD5 are the FileSize and FileHash stated; and
every PersonObject in its PersonList a well-formed one of the same camera.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import datetime
from typing import Any

from sim.viid_checks import Reject, _digits, _int, _time14, check_person

SLICE_REQUIRED = {
    "VideoID", "InfoKind", "VideoSource", "IsAbstractVideo", "EventSort", "DeviceID", "StoragePath",
    "FileHash", "FileFormat", "CodedFormat", "AudioFlag", "VideoLen", "BeginTime", "EndTime",
    "Width", "Height", "VideoProcFlag", "FileSize",
}  # fmt: skip
SLICE_OPTIONAL = {
    "OriginVideoID", "OriginVideoURL", "ThumbnailStoragePath", "AudioCodedFormat", "Title", "TitleNote",
    "SpecialName", "Keyword", "ContentDescription", "MainCharacter", "ShotPlaceCode", "ShotPlaceFullAdress",
    "ShotPlaceLongitude", "ShotPlaceLatitude", "HorizontalShotDirection", "VerticalShotDirection",
    "SecurityLevel", "TimeErr", "QualityGrade", "CollectorName", "CollectorOrg", "CollectorIDType",
    "CollectorID", "EntryClerk", "EntryClerkOrg", "EntryClerkIDType", "EntryClerkID", "EntryTime",
}  # fmt: skip
OBJECT_KEYS = {"VideoSliceInfo", "PersonList", "Data"}
FILE_FORMATS = {"Mpg", "Mov", "Avi", "Rm", "Rmvb", "Flv", "Vob", "M2ts", "Mp4", "Es", "Ps", "Ts", "Other"}
CODED_FORMATS = {"1", "2", "3", "4", "5", "6", "99"}  # SVAC, H.264, MPEG-4, MPEG-2, MJPEG, H.265, other
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def _time_of(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d%H%M%S")


def check_video_slice(obj: Any) -> None:
    """Raise Reject unless ``obj`` is a well-formed VideoSliceObject from a capture device."""
    if not isinstance(obj, dict):
        raise Reject(8, "VideoSliceObject must be an object")
    if unknown := set(obj) - OBJECT_KEYS:
        raise Reject(8, f"VideoSliceObject has unknown fields {sorted(unknown)}")
    info = obj.get("VideoSliceInfo")
    if not isinstance(info, dict):
        raise Reject(8, "VideoSliceObject lacks its VideoSliceInfo")
    if missing := SLICE_REQUIRED - set(info):
        raise Reject(8, f"VideoSliceInfo lacks {sorted(missing)}")
    if unknown := set(info) - SLICE_REQUIRED - SLICE_OPTIONAL:
        raise Reject(8, f"VideoSliceInfo has unknown fields {sorted(unknown)}")
    device = _digits(info["DeviceID"], 20, "DeviceID")
    vid = _digits(info["VideoID"], 41, "VideoID")
    if vid[:20] != device or vid[20:22] != "01":
        raise Reject(8, "VideoID must be the DeviceID, 01 (video slice), a time and a 5-digit sequence")
    _time14(vid[22:36], "VideoID time part")
    if _int(info, "InfoKind", 0, 2) != 1:
        raise Reject(8, "InfoKind must be 1 (automatic) for a capture device")
    if not isinstance(info["VideoSource"], str) or not re.fullmatch(r"\d{1,2}", info["VideoSource"]):
        raise Reject(8, f"VideoSource must be a 1-2 digit code, got {info['VideoSource']!r:.20}")
    if not isinstance(info["IsAbstractVideo"], bool):
        raise Reject(8, "IsAbstractVideo must be true or false")
    _int(info, "EventSort", 1, 9999)
    if not isinstance(info["StoragePath"], str):
        raise Reject(8, "StoragePath must be a string (a URI, or empty when Data is sent)")
    if info["FileFormat"] not in FILE_FORMATS:
        raise Reject(8, f"FileFormat {info['FileFormat']!r:.20} is not a GA/T 1400.3 video format")
    if info["CodedFormat"] not in CODED_FORMATS:
        raise Reject(8, f"CodedFormat {info['CodedFormat']!r:.20} is not a GA/T 1400.3 video coding")
    if _int(info, "AudioFlag", 0, 1) not in (0, 1) or _int(info, "VideoProcFlag", 0, 1) not in (0, 1):
        raise Reject(8, "AudioFlag and VideoProcFlag are 0 or 1")
    _time14(info["BeginTime"], "BeginTime")
    _time14(info["EndTime"], "EndTime")
    span = (_time_of(info["EndTime"]) - _time_of(info["BeginTime"])).total_seconds()
    if span < 0:
        raise Reject(8, "EndTime is before BeginTime")
    length = info["VideoLen"]
    if isinstance(length, bool) or not isinstance(length, (int, float)) or length <= 0:
        raise Reject(8, f"VideoLen must be a positive number of seconds, got {length!r:.20}")
    if abs(length - span) > 2.0:  # times have 1 s resolution, and a cut ends on a keyframe
        raise Reject(8, f"VideoLen {length} s disagrees with BeginTime..EndTime ({span:.0f} s)")
    _int(info, "Width", 1, 10_000)
    _int(info, "Height", 1, 10_000)
    size = _int(info, "FileSize", 1, 2**40)
    if not isinstance(info["FileHash"], str) or not _HEX32.match(info["FileHash"]):
        raise Reject(8, "FileHash must be the file's MD5, 32 lowercase hex digits")
    if "Data" in obj:
        try:
            data = base64.b64decode(obj["Data"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise Reject(8, f"Data is not base64: {exc}") from exc
        if data[4:8] != b"ftyp":
            raise Reject(8, "Data is not an MP4 (no ftyp box)")
        if len(data) != size or hashlib.md5(data).hexdigest() != info["FileHash"]:
            raise Reject(8, "Data does not match FileSize and FileHash")
    elif not info["StoragePath"]:
        raise Reject(8, "a VideoSlice needs its Data or a StoragePath to fetch it from")
    people = obj.get("PersonList", {})
    persons = people.get("PersonObject", []) if isinstance(people, dict) else None
    if not isinstance(persons, list):
        raise Reject(8, "PersonList.PersonObject must be a list")
    for person in persons:
        check_person(person)
        if person["DeviceID"] != device:
            raise Reject(8, "a PersonObject of the video is from another camera")

"""The record checks of the strict GA/T 1400 视图库 double (sim.mock_viid): PersonObjects
and their images, and the small field checks sim.mock_viid_video also uses for VideoSlices.

A module of their own so the two doubles share them without importing each other.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any

_DIGITS = re.compile(r"^\d+$")

PERSON_REQUIRED = {
    "PersonID", "InfoKind", "SourceID", "DeviceID", "LeftTopX", "LeftTopY", "RightBtmX", "RightBtmY",
    "IsDriver", "IsForeigner", "IsSuspectedTerrorist", "IsCriminalInvolved", "IsDetainees", "IsVictim",
    "IsSuspiciousPerson",
}  # fmt: skip
PERSON_OPTIONAL = {"SubImageList", "PersonAppearTime", "PersonDisAppearTime", "LocationMarkTime"}
IMAGE_REQUIRED = {
    "ImageID",
    "EventSort",
    "DeviceID",
    "Type",
    "FileFormat",
    "ShotTime",
    "Width",
    "Height",
    "Data",
}
IMAGE_OPTIONAL = {"StoragePath"}


class Reject(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _digits(value: Any, n: int, what: str) -> str:
    if not isinstance(value, str) or len(value) != n or not _DIGITS.match(value):
        raise Reject(8, f"{what} must be a string of {n} digits, got {value!r:.60}")
    return value


def _time14(value: Any, what: str) -> None:
    _digits(value, 14, what)
    try:
        datetime.strptime(value, "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise Reject(8, f"{what} is not a valid YYYYMMDDhhmmss time: {value!r}") from exc


def _image_like_id(value: Any, what: str) -> str:
    text = _digits(value, 41, what)
    if text[20:22] != "02":
        raise Reject(8, f"{what} type code must be 02 (image), got {text[20:22]}")
    _time14(text[22:36], f"{what} time part")
    return text


def _int(obj: dict[str, Any], key: str, lo: int, hi: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise Reject(8, f"{key} must be an integer {lo}..{hi}, got {value!r:.40}")
    return value


def check_person(person: Any) -> None:
    """Raise Reject unless ``person`` is a well-formed automatically captured PersonObject."""
    if not isinstance(person, dict):
        raise Reject(8, "PersonObject must be an object")
    keys = set(person)
    if missing := PERSON_REQUIRED - keys:
        raise Reject(8, f"PersonObject lacks {sorted(missing)}")
    if unknown := keys - PERSON_REQUIRED - PERSON_OPTIONAL:
        raise Reject(8, f"PersonObject has unknown fields {sorted(unknown)}")
    device = _digits(person["DeviceID"], 20, "DeviceID")
    source = _image_like_id(person["SourceID"], "SourceID")
    pid = _digits(person["PersonID"], 48, "PersonID")
    if pid[:41] != source or pid[41:43] != "01":
        raise Reject(8, "PersonID must be SourceID + 01 + 5-digit sequence")
    if _int(person, "InfoKind", 0, 2) != 1:
        raise Reject(8, "InfoKind must be 1 (automatic) for a capture device")
    for flag in PERSON_REQUIRED:
        if flag.startswith("Is") and _int(person, flag, 0, 2) not in (0, 2):
            raise Reject(8, f"{flag} must be 0 or 2 from an automatic capture")
    for key in ("PersonAppearTime", "PersonDisAppearTime", "LocationMarkTime"):
        if key in person:
            _time14(person[key], key)
    left, top = _int(person, "LeftTopX", 0, 100_000), _int(person, "LeftTopY", 0, 100_000)
    right, bottom = _int(person, "RightBtmX", 0, 100_000), _int(person, "RightBtmY", 0, 100_000)
    if left > right or top > bottom:
        raise Reject(8, "box corners are not ordered")
    images = person.get("SubImageList", {}).get("SubImageInfoObject", [])
    if not isinstance(images, list):
        raise Reject(8, "SubImageInfoObject must be a list")
    for image in images:
        if not isinstance(image, dict):
            raise Reject(8, "SubImageInfoObject entries must be objects")
        if missing := IMAGE_REQUIRED - set(image):
            raise Reject(8, f"SubImageInfoObject lacks {sorted(missing)}")
        if unknown := set(image) - IMAGE_REQUIRED - IMAGE_OPTIONAL:
            raise Reject(8, f"SubImageInfoObject has unknown fields {sorted(unknown)}")
        _image_like_id(image["ImageID"], "ImageID")
        _digits(image["DeviceID"], 20, "SubImage DeviceID")
        if image["DeviceID"] != device:
            raise Reject(8, "SubImage DeviceID differs from the person's DeviceID")
        if image["Type"] not in ("10", "14") or image["FileFormat"] != "Jpeg":
            raise Reject(8, f"Type must be '10' or '14' and FileFormat 'Jpeg': {image['Type']!r}")
        _time14(image["ShotTime"], "ShotTime")
        width, height = _int(image, "Width", 1, 10_000), _int(image, "Height", 1, 10_000)
        # The box is in the pixels of the person's source image, whichever type it is.
        if image["ImageID"] == source and (right >= width or bottom >= height):
            raise Reject(8, "person box lies outside its source image")
        try:
            data = base64.b64decode(image["Data"], validate=True)
        except (binascii.Error, TypeError) as exc:
            raise Reject(8, f"Data is not base64: {exc}") from exc
        if not (data.startswith(b"\xff\xd8") and data.rstrip(b"\x00").endswith(b"\xff\xd9")):
            raise Reject(8, "Data is not a JPEG")
    if images and not any(i.get("ImageID") == source for i in images):
        raise Reject(8, "no SubImageInfoObject is the SourceID image the box refers to")

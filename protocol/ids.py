"""Identifiers on the wire: device IDs, group IDs and event IDs.

Device ID — the 20-digit national video-device code (GB/T 28181 Annex D,
GA/T 1400.1)::

    620621 01 | 01 | 119 | 8 | 000123
    division+township (centre code, 8) | industry (2) | type (3) | network (1) | serial (6)

Event ID — a non-negative integer ``boot << 32 | seq``: ``boot`` is a counter the
device persists and bumps on every agent start, ``seq`` counts events within
that boot. A Pi has no RTC, so its wall clock can jump backwards at boot and
forwards when NTP syncs; an ID built from the clock could repeat or sort wrong.
``(boot, seq)`` is strictly increasing in the order events happen on the
device, whatever the clock does, and fits in 53 bits so JSON numbers stay exact
in every language (JavaScript included).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from protocol.errors import ProtocolError

MINQIN_DIVISION = "620621"
TYPE_CAPTURE_DEVICE = "119"  # GA/T 1400: online capture device (APE)
# GB/T 28181 Annex D industry code 01: social-security community access
# (社会治安社区接入) — household cameras joined into the 雪亮 network.
INDUSTRY_COMMUNITY = "01"
# Network flag 8: social-resource access network (社会资源接入网) — private
# cameras reaching the platform over the public 4G/Wi-Fi internet.
NETWORK_SOCIAL_RESOURCE = "8"

_DEVICE_RE = re.compile(r"[0-9]{20}")
_GROUP_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")

SERIAL_MAX = 999_999
EVENT_ID_BOOT_BITS = 21
EVENT_ID_SEQ_BITS = 32
EVENT_ID_MAX = (1 << (EVENT_ID_BOOT_BITS + EVENT_ID_SEQ_BITS)) - 1  # 2**53 - 1


@dataclass(frozen=True, slots=True)
class DeviceId:
    division: str  # 6 digits, e.g. 620621 (Minqin county)
    township: str  # 2 digits; division + township = 8-digit centre code
    industry: str  # 2 digits
    type_code: str  # 3 digits
    network: str  # 1 digit
    serial: int  # 0..999999

    def __str__(self) -> str:
        return f"{self.division}{self.township}{self.industry}{self.type_code}{self.network}{self.serial:06d}"

    @property
    def centre(self) -> str:
        return self.division + self.township


def _require_digits(name: str, value: str, n: int) -> None:
    if len(value) != n or not value.isascii() or not value.isdigit():
        raise ProtocolError("bad_device_id", f"{name} must be {n} digits, got {value!r}")


def make_device_id(
    township: str | int,
    serial: int,
    *,
    division: str = MINQIN_DIVISION,
    industry: str = INDUSTRY_COMMUNITY,
    type_code: str = TYPE_CAPTURE_DEVICE,
    network: str = NETWORK_SOCIAL_RESOURCE,
) -> DeviceId:
    """Build a device ID from its parts, validating each one."""
    township_s = f"{township:02d}" if isinstance(township, int) else township
    _require_digits("division", division, 6)
    _require_digits("township", township_s, 2)
    _require_digits("industry", industry, 2)
    _require_digits("type", type_code, 3)
    _require_digits("network", network, 1)
    if isinstance(serial, bool) or not isinstance(serial, int) or not 0 <= serial <= SERIAL_MAX:
        raise ProtocolError("bad_device_id", f"serial must be 0..{SERIAL_MAX}, got {serial!r}")
    return DeviceId(division, township_s, industry, type_code, network, serial)


def parse_device_id(text: object) -> DeviceId:
    """Parse a 20-digit device ID; the error says which part is wrong."""
    if not isinstance(text, str):
        raise ProtocolError("bad_device_id", f"device ID must be a string, got {type(text).__name__}")
    if not _DEVICE_RE.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise ProtocolError("bad_device_id", f"device ID must be exactly 20 ASCII digits, got {shown!r}")
    return DeviceId(
        division=text[0:6],
        township=text[6:8],
        industry=text[8:10],
        type_code=text[10:13],
        network=text[13],
        serial=int(text[14:20]),
    )


def is_device_id(text: object) -> bool:
    return isinstance(text, str) and _DEVICE_RE.fullmatch(text) is not None


def allocate_device_id(
    township: str | int,
    used: Iterable[str],
    *,
    division: str = MINQIN_DIVISION,
    industry: str = INDUSTRY_COMMUNITY,
    type_code: str = TYPE_CAPTURE_DEVICE,
    network: str = NETWORK_SOCIAL_RESOURCE,
) -> DeviceId:
    """The next free ID in a township: one more than the highest serial in use.

    Serials are never reused (a revoked device's ID stays burnt), which is why
    this takes max+1 rather than the first gap.
    """
    probe = make_device_id(township, 0, division=division, industry=industry, type_code=type_code, network=network)
    prefix = str(probe)[:14]
    highest = -1
    for existing in used:
        if existing.startswith(prefix) and is_device_id(existing):
            highest = max(highest, int(existing[14:]))
    if highest >= SERIAL_MAX:
        raise ProtocolError("bad_device_id", f"no serials left under prefix {prefix}")
    return make_device_id(
        township,
        highest + 1,
        division=division,
        industry=industry,
        type_code=type_code,
        network=network,
    )


def parse_group_id(text: object) -> str:
    """A 联防组 id: 1–32 chars of [A-Za-z0-9_-], starting alphanumeric.

    Slashes, ``+`` and ``#`` are excluded so a group id is always exactly one
    MQTT topic level and can never widen a subscription or ACL pattern.
    """
    if not isinstance(text, str) or not _GROUP_RE.fullmatch(text):
        raise ProtocolError("bad_group_id", f"group ID must match [A-Za-z0-9][A-Za-z0-9_-]{{0,31}}, got {text!r}")
    return text


def make_event_id(boot: int, seq: int) -> int:
    if not 0 <= boot < (1 << EVENT_ID_BOOT_BITS):
        raise ProtocolError("bad_event_id", f"boot counter out of range: {boot}")
    if not 0 <= seq < (1 << EVENT_ID_SEQ_BITS):
        raise ProtocolError("bad_event_id", f"sequence out of range: {seq}")
    return (boot << EVENT_ID_SEQ_BITS) | seq


def split_event_id(event_id: int) -> tuple[int, int]:
    """(boot, seq) of an event ID."""
    check_event_id(event_id)
    return event_id >> EVENT_ID_SEQ_BITS, event_id & ((1 << EVENT_ID_SEQ_BITS) - 1)


def check_event_id(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= EVENT_ID_MAX:
        raise ProtocolError("bad_event_id", f"event ID must be an integer 0..2^53-1, got {value!r}")
    return value


class EventIdGenerator:
    """Hands out increasing event IDs within one boot of the agent.

    The boot number comes from the device's persisted boot counter
    (``agent.bootcount``); when ``seq`` would overflow the generator moves to
    the next boot number itself, so IDs still never repeat.
    """

    def __init__(self, boot: int, start_seq: int = 0) -> None:
        make_event_id(boot, start_seq)  # validates both
        self._boot = boot
        self._seq = start_seq

    @property
    def boot(self) -> int:
        return self._boot

    def next(self) -> int:
        if self._seq >= (1 << EVENT_ID_SEQ_BITS):
            self._boot += 1
            self._seq = 0
        event_id = make_event_id(self._boot, self._seq)
        self._seq += 1
        return event_id

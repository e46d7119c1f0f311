"""Forward items and platform identities for the forwarding tests: person events
with a snapshot, panic alerts, the hub's gateway ID and password at the mock 视图库."""

from __future__ import annotations

from hub.forward import AlertItem, EventItem, Snapshot
from protocol.ids import make_event_id

CAMERA = "62062101011198000001"
CAMERA2 = "62062101011198000002"
GATEWAY = "62062100001198000001"  # the hub's own registered identity
PASSWORD = "s3cret-viid-password"
T0 = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC = 08:00 in Shanghai
# A tiny byte string shaped like a JPEG (SOI ... EOI); nobody decodes the pixels.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(64)) + b"\xff\xd9"


def person(seq: int, *, device: str = CAMERA, t_ms: int = T0, phase: str = "start") -> EventItem:
    return EventItem(
        device_id=device,
        event_id=make_event_id(3, seq),
        phase=phase,
        kind="person",
        time_ms=t_ms + seq * 1000,
        score=87,
        bbox=(250, 100, 500, 900),
        snapshot=Snapshot(JPEG, 640, 480),
        household_id="HH0001",
    )


def panic(alert_id: str, t_ms: int = T0) -> AlertItem:
    return AlertItem(
        alert_id=alert_id, phase="raise", kind="panic", origin=CAMERA, household_id="HH0001",
        time_ms=t_ms, group_id="g0101", text="张家",
    )  # fmt: skip

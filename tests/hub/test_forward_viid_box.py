"""The person box at the 视图库 locates the person in the picture sent with it.

A synthetic frame with a real person photo pasted at a known place goes the
whole way: the agent's snapshot code (cropping as a Pi does, or not), the
hub's ingest of the event and its picture, the forward outbox, the 视图库
sink and the strict mock platform. The test then decodes the JPEG the
platform received, finds the person in its pixels, and compares that with
the box in the same PersonObject.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import simplejpeg
from sqlalchemy import Engine

from agent.vision.snapshot import make_snapshot
from agent.vision.sprites import paste, sprite_at_height
from hub.alerts.engine import AlertEngine
from hub.config import AlertConfig, HealthConfig
from hub.core.directory import Directory
from hub.core.inbound import Inbound
from hub.db import make_engine
from hub.forward import Forwarder, ManualClock, ViidConfig, ViidSink
from hub.ingest.batch import BatchProcessor
from protocol.codec import encode, encode_snapshot
from protocol.messages import Event
from protocol.topics import event_topic, snap_topic
from sim.mock_viid import MockViid
from tests.support.forward_items import GATEWAY, PASSWORD
from tests.support.hub_db import make_fleet

FRAME_W, FRAME_H = 1280, 720
BACKGROUND = np.array([40, 170, 70], np.uint8)  # a flat green wall: nothing in the astronaut photo is this colour
FOUND = 60  # a pixel this far (max over channels) from the wall is part of the person


@dataclass(frozen=True)
class Placed:
    rgb: np.ndarray
    box: tuple[float, float, float, float]  # where the person is, normalised to the frame


def scene(left: int, top: int, height: int) -> Placed:
    """The frame, and the person's box: where the sprite is at least half opaque."""
    rng = np.random.default_rng(5)
    rgb = np.empty((FRAME_H, FRAME_W, 3), np.uint8)
    rgb[...] = BACKGROUND
    rgb += rng.integers(0, 3, rgb.shape, dtype=np.uint8)  # a little sensor noise
    sprite = sprite_at_height("astronaut", height)
    paste(rgb, sprite, left, top)
    rows, cols = np.nonzero(sprite.alpha >= 128)
    x1, x2 = max(0, left + cols.min()), min(FRAME_W, left + cols.max() + 1)
    y1, y2 = max(0, top + rows.min()), min(FRAME_H, top + rows.max() + 1)
    return Placed(rgb, (x1 / FRAME_W, y1 / FRAME_H, x2 / FRAME_W, y2 / FRAME_H))


def person_in(jpeg: bytes) -> tuple[int, int, int, int]:
    """The person's box in the decoded picture, found from its pixels alone."""
    pixels = simplejpeg.decode_jpeg(jpeg, colorspace="RGB").astype(np.int16)
    mask = np.abs(pixels - BACKGROUND.astype(np.int16)).max(axis=2) > FOUND
    # A row or column counts when a few pixels in it differ, so a JPEG ringing speck does not.
    rows = np.nonzero(mask.sum(axis=1) >= 3)[0]
    cols = np.nonzero(mask.sum(axis=0) >= 3)[0]
    assert rows.size and cols.size, "no person in the forwarded picture"
    return int(cols[0]), int(rows[0]), int(cols[-1]), int(rows[-1])


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area else 0.0


@pytest.fixture
def rig(db_url: str) -> Iterator[tuple[Engine, str, BatchProcessor, Forwarder, MockViid]]:
    engine = make_engine(db_url)
    camera = make_fleet(engine, groups=1, per_group=1)["g000"][0]
    clock = ManualClock(int(time.time() * 1000))
    viid = MockViid(GATEWAY, PASSWORD, now_ms=clock.now_ms)
    viid.start()
    sink = ViidSink(ViidConfig(f"http://127.0.0.1:{viid.port}", GATEWAY, PASSWORD, timeout_s=3), clock)
    fwd = Forwarder(engine, [sink], clock, rng=random.Random(4))
    directory = Directory(engine, ttl_s=60)
    proc = BatchProcessor(engine, directory, AlertEngine(directory, AlertConfig(), fwd), fwd, HealthConfig())
    try:
        yield engine, camera, proc, fwd, viid
    finally:
        fwd.stop()
        viid.stop()
        engine.dispose()


def forward_one(
    rig: Any, placed: Placed, *, crop: bool, event_box: tuple[int, int, int, int] | None = None
) -> dict[str, Any]:
    """Send one person event with its snapshot through ingest and forwarding; the PersonObject received.
    ``event_box`` is the event's own box when it is not the picture's (a visit's union over a walk)."""
    _engine, camera, proc, fwd, viid = rig
    t = int(time.time() * 1000)
    event_id = (1 << 32) + 17
    snap = make_snapshot(placed.rgb, event_id=event_id, phase="start", time_ms=t, box=placed.box, crop=crop)
    assert (snap.crop is not None) == crop  # the agent did (or did not) crop, as the case means
    bbox = event_box or tuple(round(v * 1000) for v in placed.box)
    event = Event(event_id=event_id, kind="person", phase="start", time_ms=t, score=90, bbox=bbox,  # type: ignore[arg-type]
                  count=1, has_snapshot=True)  # fmt: skip
    now = int(time.time() * 1000)
    proc.process([Inbound(event_topic(camera), encode(event), 1, 1, now),
                  Inbound(snap_topic(camera), encode_snapshot(snap), 2, 1, now)])  # fmt: skip
    for _ in range(3):
        fwd.run_once()
        if viid.persons:
            break
    assert viid.rejections == [] and len(viid.persons) == 1
    return viid.persons[0]


# Left-centre; against the right edge, where the crop is pushed inside the frame;
# a small far person; and one in the top-left corner, where it is clipped.
PLACES = {"centre": (300, 150, 500), "right_edge": (1120, 200, 480), "far": (800, 330, 160), "corner": (-40, -30, 420)}


@pytest.mark.parametrize("place", PLACES, ids=list(PLACES))
def test_the_box_locates_the_person_in_the_forwarded_crop(rig: Any, place: str) -> None:
    got = forward_one(rig, scene(*PLACES[place]), crop=True)
    (image,) = got["SubImageList"]["SubImageInfoObject"]
    assert image["Type"] == "10"  # 人员图: a crop around the person, not the scene
    assert image["ImageID"] == got["SourceID"]  # the box's coordinates are this picture's
    jpeg = base64.b64decode(image["Data"])
    height, width = simplejpeg.decode_jpeg_header(jpeg)[:2]
    assert (image["Width"], image["Height"]) == (width, height)
    sent = (got["LeftTopX"], got["LeftTopY"], got["RightBtmX"], got["RightBtmY"])
    found = person_in(jpeg)
    assert iou(sent, found) >= 0.7, f"box {sent} vs person at {found} in the {width}x{height} picture"


@pytest.mark.parametrize("place", ["centre", "corner"])
def test_a_whole_frame_is_sent_as_the_scene_with_the_box_in_its_pixels(rig: Any, place: str) -> None:
    got = forward_one(rig, scene(*PLACES[place]), crop=False)
    (image,) = got["SubImageList"]["SubImageInfoObject"]
    assert image["Type"] == "14"  # 场景图
    jpeg = base64.b64decode(image["Data"])
    assert simplejpeg.decode_jpeg_header(jpeg)[:2] == (360, 640)  # the agent shrank 1280x720 to 640 wide
    sent = (got["LeftTopX"], got["LeftTopY"], got["RightBtmX"], got["RightBtmY"])
    assert iou(sent, person_in(jpeg)) >= 0.7


def test_the_box_is_the_pictures_own_when_the_person_moved_after_the_best_frame(rig: Any) -> None:
    """The event's box is where the person is when the event is sent (the
    tracker's current detections), while the picture is the visit's best frame,
    maybe taken seconds earlier: the PersonObject must use the box the device
    measured in that picture's frame, not the event's."""
    placed = scene(*PLACES["centre"])
    x1, y1, x2, y2 = (round(v * 1000) for v in placed.box)
    moved_on = (x1 + 350, y1, x2 + 350, y2)  # a body width or two to the right by the time of sending
    got = forward_one(rig, placed, crop=True, event_box=moved_on)
    (image,) = got["SubImageList"]["SubImageInfoObject"]
    jpeg = base64.b64decode(image["Data"])
    sent = (got["LeftTopX"], got["LeftTopY"], got["RightBtmX"], got["RightBtmY"])
    assert iou(sent, person_in(jpeg)) >= 0.7, f"box {sent} vs person at {person_in(jpeg)}"

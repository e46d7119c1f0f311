"""A small JPEG of an event's best frame, cropped around the person.

The link is metered 4G, so the picture has a byte budget (~12 KB): quality
steps down until it fits, then the picture halves and the steps repeat.
"""

from __future__ import annotations

import numpy as np
import simplejpeg

from agent.vision.frame import shrink
from agent.vision.masks import black_out
from protocol.codec import Snapshot

Box = tuple[float, float, float, float]
QUALITIES = (85, 75, 65, 55, 45)  # below ~45 a smaller picture looks better than a blockier one
LAST_RESORT = (35, 25)
MIN_SIDE = 96


def crop_around(box: Box, width: int, height: int, margin: float = 0.35) -> tuple[int, int, int, int]:
    """Pixel crop around a normalised box: the box plus ``margin`` of its size on
    each side, at least a third of the frame's shorter side, inside the frame."""
    x1, y1, x2, y2 = box
    bw, bh = (x2 - x1) * width, (y2 - y1) * height
    side_min = min(width, height) / 3
    cw = min(width, max(bw * (1 + 2 * margin), side_min))
    ch = min(height, max(bh * (1 + 2 * margin), side_min))
    cx, cy = (x1 + x2) / 2 * width, (y1 + y2) / 2 * height
    left = round(min(max(cx - cw / 2, 0), width - cw))
    top = round(min(max(cy - ch / 2, 0), height - ch))
    return left, top, left + round(cw), top + round(ch)


def encode_within(image: np.ndarray, max_bytes: int) -> bytes:
    """JPEG of ``image`` no larger than ``max_bytes``, shrinking it if it must."""
    while True:
        img = np.ascontiguousarray(image)
        last = min(img.shape[:2]) < 2 * MIN_SIDE  # halving again would make it too small
        for quality in QUALITIES + (LAST_RESORT if last else ()):
            jpeg: bytes = simplejpeg.encode_jpeg(img, quality=quality, colorspace="RGB", colorsubsampling="420")
            if len(jpeg) <= max_bytes:
                return jpeg
        if last:
            raise ValueError(f"cannot fit a {img.shape[1]}x{img.shape[0]} JPEG into {max_bytes} bytes")
        image = shrink(image, 2)


def make_snapshot(
    rgb: np.ndarray,
    *,
    event_id: int,
    phase: str,
    time_ms: int,
    box: Box | None = None,
    crop: bool = True,
    max_bytes: int = 12_000,
    max_width: int = 640,
    mask: np.ndarray | None = None,
) -> Snapshot:
    """A ``protocol.codec.Snapshot`` of ``rgb`` (optionally cropped around ``box``).

    ``mask`` (boolean, the frame's size) is blacked out first: the config's masked
    areas (a neighbour's window, the road) never leave the device, in a picture or a clip.
    """
    height, width = rgb.shape[:2]
    rgb = black_out(rgb, mask)
    region = None
    image = rgb
    if crop and box is not None:
        x1, y1, x2, y2 = crop_around(box, width, height)
        if (x2 - x1) * (y2 - y1) < 0.8 * width * height:
            region = (x1, y1, x2, y2)
            image = rgb[y1:y2, x1:x2]
    factor = -(-image.shape[1] // max_width)
    image = shrink(image, factor)
    jpeg = encode_within(image, max_bytes)
    h, w = simplejpeg.decode_jpeg_header(jpeg)[:2]
    permille = None
    if region is not None:
        x1, y1, x2, y2 = region
        permille = (
            round(x1 * 1000 / width),
            round(y1 * 1000 / height),
            round(x2 * 1000 / width),
            round(y2 * 1000 / height),
        )
    person: tuple[int, int, int, int] | None = None
    if box is not None:
        bx1, by1, bx2, by2 = (min(1000, max(0, round(v * 1000))) for v in box)
        person = (bx1, by1, bx2, by2)
    return Snapshot(
        event_id=event_id, phase=phase, time_ms=time_ms, width=w, height=h, jpeg=jpeg, crop=permille, box=person
    )

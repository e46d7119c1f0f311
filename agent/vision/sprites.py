"""Real-photo sprites and textures for synthetic scenes, cut from scikit-image's data.

scikit-image ships its sample photos inside the wheel, so tests and the demo
get real people (the astronaut Eileen Collins, the cameraman), real
non-people (Chelsea the cat, a cup of coffee) and real textures (brick,
gravel, grass) without a download. scikit-image is a dev/demo dependency,
never an agent one: this module imports it lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class Sprite:
    name: str
    is_person: bool
    rgb: np.ndarray  # h x w x 3 uint8
    alpha: np.ndarray  # h x w uint16, 0..256 (integer blending)


@dataclass(frozen=True, slots=True)
class _Cut:
    image: str  # skimage.data function name
    rows: tuple[int, int]
    cols: tuple[int, int]
    is_person: bool
    # Superellipse exponent of the soft mask: higher is squarer (keeps shoulders).
    squareness: float = 3.0


# Crops chosen by looking at the photos: the person (or object) fills the cut
# and the soft mask trims the studio/field background around it.
CUTS: dict[str, _Cut] = {
    "astronaut": _Cut("astronaut", (8, 512), (12, 372), True),
    "cameraman": _Cut("camera", (40, 512), (0, 330), True),
    "cat": _Cut("chelsea", (0, 300), (30, 430), False, squareness=2.2),
    "coffee": _Cut("coffee", (0, 400), (60, 500), False, squareness=2.2),
}


def _skimage_data() -> Any:
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "synthetic scenes use scikit-image's sample photos: pip install scikit-image (it is in the dev extra)"
        ) from exc
    return data


def soft_mask(h: int, w: int, squareness: float = 3.0, feather: float = 0.12) -> np.ndarray:
    """A superellipse filling h x w that fades to 0 over ``feather`` of its radius."""
    y = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
    x = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    r = (np.abs(x)[None, :] ** squareness + np.abs(y)[:, None] ** squareness) ** (1 / squareness)
    return np.clip((1.0 - r) / feather, 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=8)
def load_sprite(name: str) -> Sprite:
    """The named sprite at its photo's native size."""
    if name not in CUTS:
        raise KeyError(f"unknown sprite {name!r}; known: {', '.join(sorted(CUTS))}")
    cut = CUTS[name]
    image = getattr(_skimage_data(), cut.image)()
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    rgb = np.ascontiguousarray(image[cut.rows[0] : cut.rows[1], cut.cols[0] : cut.cols[1], :3])
    alpha = soft_mask(rgb.shape[0], rgb.shape[1], cut.squareness)
    return Sprite(name, cut.is_person, rgb, (alpha * 256 + 0.5).astype(np.uint16))


@lru_cache(maxsize=64)
def sprite_at_height(name: str, height: int, lo: int = 0, hi: int = 255) -> Sprite:
    """The sprite resized (anti-aliased) to ``height`` pixels, aspect kept,
    its pixel values clamped to [lo, hi]."""
    from skimage.transform import resize

    base = load_sprite(name)
    h, w = base.rgb.shape[:2]
    height = max(2, height)
    width = max(2, round(w * height / h))
    rgb = resize(base.rgb, (height, width), order=1, anti_aliasing=True, preserve_range=True)
    alpha = resize(base.alpha.astype(np.float32), (height, width), order=1, anti_aliasing=True)
    return Sprite(
        base.name,
        base.is_person,
        np.clip(rgb + 0.5, lo, hi).astype(np.uint8),
        np.clip(alpha + 0.5, 0, 256).astype(np.uint16),
    )


def texture(name: str, height: int, width: int, tint: tuple[float, float, float], contrast: float) -> np.ndarray:
    """A grey skimage texture tiled to height x width, contrast-scaled and tinted."""
    grey = getattr(_skimage_data(), name)().astype(np.float32)
    reps = (-(-height // grey.shape[0]), -(-width // grey.shape[1]))
    tiled = np.tile(grey, reps)[:height, :width]
    flat = (tiled - tiled.mean()) * contrast + 128.0
    rgb = flat[:, :, None] * np.asarray(tint, np.float32)[None, None, :]
    out: np.ndarray = np.clip(rgb, 0, 255).astype(np.uint8)
    return out


def paste(canvas: np.ndarray, sprite: Sprite, left: int, top: int) -> None:
    """Alpha-blend ``sprite`` onto ``canvas`` in place, clipped to the canvas."""
    ch, cw = canvas.shape[:2]
    sh, sw = sprite.rgb.shape[:2]
    x1, y1 = max(left, 0), max(top, 0)
    x2, y2 = min(left + sw, cw), min(top + sh, ch)
    if x2 <= x1 or y2 <= y1:
        return
    # Integer blend (alpha in 1/256ths): a float blend costs 3x as much at 720p.
    a = sprite.alpha[y1 - top : y2 - top, x1 - left : x2 - left, None]
    blend = sprite.rgb[y1 - top : y2 - top, x1 - left : x2 - left] * a
    dst = canvas[y1:y2, x1:x2]
    blend += dst * (256 - a)
    blend >>= 8
    dst[...] = blend

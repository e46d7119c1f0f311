"""Deterministic synthetic camera scenes: ``synthetic:<scene>?seconds=20&fps=10``.

A yard (brick wall over gravel, from real textures) with sensor noise, and
whatever the scene adds: slow illumination drift, the IR-cut switch at dusk
(colour to grey and a brightness jump at once), a swaying bush, and sprites
cut from real photos walking through (people: the astronaut and the
cameraman; non-people: the cat and a cup of coffee).

Each frame is rendered twice on demand: at the motion resolution for the luma
plane (always, ~0.5 ms) and at full resolution only when a consumer asks for
``frame.rgb`` (detection, snapshots), the same way a camera's ISP gives a cheap
lores stream beside the main one. Everything is seeded: the same scene, seed
and size give the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from agent.vision.frame import Frame, chroma_of, luma_from_rgb, motion_step, shrink
from agent.vision.sprites import CUTS, paste, soft_mask, sprite_at_height, texture

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Actor:
    """A sprite crossing the scene: centre x goes x0 → x1 between t0 and t1 (seconds)."""

    sprite: str
    t0: float
    t1: float
    x0: float
    x1: float
    feet_y: float  # normalised y of the sprite's bottom edge
    height: float  # normalised sprite height

    def centre_x(self, t: float) -> float:
        return self.x0 + (self.x1 - self.x0) * (t - self.t0) / (self.t1 - self.t0)


@dataclass(frozen=True, slots=True)
class Scene:
    name: str
    seconds: float
    fps: float = 10.0
    actors: tuple[Actor, ...] = ()
    vegetation: Box | None = None  # normalised region of a swaying bush
    sway: float = 0.012  # bush tip sway amplitude, fraction of frame width
    drift: float = 0.0  # brightness change over the whole scene, e.g. -0.3
    ir_switch_at: float | None = None  # seconds; colour → grey plus a brightness jump
    noise_sigma: float = 2.0
    description: str = ""

    def persons_at(self, t: float) -> int:
        return sum(1 for a in self.actors if a.t0 <= t <= a.t1 and CUTS[a.sprite].is_person)


# Rendered pixels stay inside [LO, HI] so that noise up to NOISE_MAX can be
# added with a plain (wrapping) uint8 add and never wraps.
NOISE_MAX = 20
LO, HI = NOISE_MAX, 255 - NOISE_MAX

BUSH: Box = (0.66, 0.18, 0.98, 0.72)

SCENES: dict[str, Scene] = {
    s.name: s
    for s in (
        Scene("quiet", 20.0, description="an empty yard with sensor noise"),
        Scene(
            "walkthrough",
            20.0,
            actors=(Actor("astronaut", 3.0, 11.0, -0.2, 1.2, 0.97, 0.55),),
            description="one person walks left to right once (3–11 s)",
        ),
        Scene("light_switch", 20.0, ir_switch_at=8.0, description="IR-cut switch at 8 s, nothing else"),
        Scene(
            "ir_visitor",
            18.0,
            # In view the moment the IR light comes on, and slow: motion is muted
            # by the switch, so only a look at the whole frame can find them.
            actors=(Actor("cameraman", 8.0, 16.0, 0.35, 0.6, 0.97, 0.5),),
            ir_switch_at=8.0,
            description="IR-cut switch at 8 s just as a person steps into view (8–16 s)",
        ),
        Scene(
            "cat",
            15.0,
            actors=(Actor("cat", 2.0, 12.0, 1.2, -0.2, 0.97, 0.35),),
            description="a cat crosses right to left",
        ),
        Scene(
            "coffee",
            15.0,
            actors=(Actor("coffee", 2.0, 12.0, -0.2, 1.2, 0.85, 0.32),),
            description="a cup of coffee slides across (a non-person object)",
        ),
        Scene("vegetation", 20.0, vegetation=BUSH, sway=0.015, description="a bush sways in the wind"),
        Scene(
            "busy",
            30.0,
            actors=(
                Actor("astronaut", 2.0, 10.0, -0.2, 1.2, 0.97, 0.55),
                Actor("cat", 6.0, 13.0, 1.2, -0.2, 0.98, 0.3),
                Actor("cameraman", 14.0, 22.0, 1.2, -0.2, 0.97, 0.5),
                Actor("astronaut", 20.0, 28.0, 0.05, 0.6, 0.62, 0.3),
            ),
            vegetation=BUSH,
            drift=0.15,
            description="people, a cat, a swaying bush and a slow brightening",
        ),
        Scene(
            "dusk",
            40.0,
            actors=(Actor("cameraman", 24.0, 32.0, -0.2, 1.2, 0.97, 0.5),),
            drift=-0.35,
            ir_switch_at=15.0,
            description="dimming light, IR-cut switch at 15 s, a person at 24–32 s",
        ),
    )
}


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``synthetic:walkthrough?seconds=20&fps=10`` → ("walkthrough", {...})."""
    body = spec.split(":", 1)[1] if spec.startswith("synthetic:") else spec
    name, _, query = body.partition("?")
    return name, dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))


@lru_cache(maxsize=4)
def _yard(height: int, width: int) -> np.ndarray:
    """The empty yard at full resolution: a brick wall over gravel."""
    wall_h = int(height * 0.38)
    wall = texture("brick", wall_h, width, (1.05, 0.78, 0.62), 0.55)
    ground = texture("gravel", height - wall_h, width, (0.95, 0.9, 0.8), 0.35)
    bg = np.concatenate([wall, ground], axis=0).astype(np.float32)
    # Light falls off towards the top: a plain gradient keeps the yard from looking flat.
    bg *= np.linspace(0.8, 1.05, height, dtype=np.float32)[:, None, None]
    yard = np.clip(bg, LO, HI).astype(np.uint8)
    yard.flags.writeable = False  # shared between renderers through the cache
    return yard


class _Renderer:
    """Scene assets and rendering at one resolution (full or motion size)."""

    def __init__(self, scene: Scene, full_size: tuple[int, int], step: int, seed: int) -> None:
        full_w, full_h = full_size
        width, height = -(-full_w // step), -(-full_h // step)
        self.scene, self.width, self.height, self.step = scene, width, height, step
        self.seed = seed
        # Textures are laid out at full resolution and box-filtered down, so the
        # motion-size render is the same picture as the full one, only smaller.
        self.background = shrink(_yard(height * step, width * step), step)
        self.noise = self._noise_bank(np.random.default_rng([seed, width]))
        self._bush = self._make_bush() if scene.vegetation else None

    def _noise_bank(self, rng: np.random.Generator) -> np.ndarray:
        # One bank, sliced at a random offset per frame: drawing fresh Gaussian
        # noise for a 1280x720 frame would cost more than everything else here.
        # Stored as wrapped uint8 so adding it is one uint8 pass; that is exact
        # because every rendered pixel is kept inside [LO, HI] (see _light).
        pad = 64
        bank = rng.normal(0.0, self.scene.noise_sigma, (self.height + pad, self.width + pad, 3))
        return np.clip(np.round(bank), -NOISE_MAX, NOISE_MAX).astype(np.int8).view(np.uint8)

    def _make_bush(self) -> tuple[int, int, int, int, np.ndarray, np.ndarray, int]:
        x1, y1, x2, y2 = self.scene.vegetation or (0, 0, 0, 0)
        px1, py1 = int(x1 * self.width), int(y1 * self.height)
        px2, py2 = int(x2 * self.width), int(y2 * self.height)
        amp = max(1, math.ceil(self.scene.sway * self.width))
        k = self.step
        tex = texture("grass", (py2 - py1) * k, (px2 - px1 + 2 * amp) * k, (0.55, 0.95, 0.45), 0.8)
        tex = shrink(np.clip(tex, LO, HI), k)
        alpha = soft_mask(py2 - py1, px2 - px1, squareness=2.5, feather=0.25)
        return px1, py1, px2, py2, tex, (alpha * 256).astype(np.uint16)[:, :, None], amp

    def _draw_bush(self, img: np.ndarray, t: float) -> None:
        assert self._bush is not None
        x1, y1, x2, y2, tex, alpha, amp = self._bush
        h, w = y2 - y1, x2 - x1
        # Tips sway most, the base not at all; gusts modulate the amplitude.
        gust = 0.6 + 0.4 * math.sin(2 * math.pi * 0.13 * t)
        rows = np.arange(h, dtype=np.float32)
        lean = (1.0 - rows / h) * gust * np.sin(2 * math.pi * 0.9 * t + rows * 0.05)
        offs = (np.round(amp * lean).astype(np.intp) + amp).tolist()
        leaves = np.empty((h, w, 3), np.uint16)
        for r, off in enumerate(offs):  # a row slice each: far cheaper than a 2-D gather
            leaves[r] = tex[r, off : off + w]
        region = img[y1:y2, x1:x2]
        leaves *= alpha
        leaves += region * (256 - alpha)
        leaves >>= 8
        region[...] = leaves

    def render(self, t: float, index: int) -> np.ndarray:
        scene = self.scene
        img = self.background.copy()
        if self._bush is not None:
            self._draw_bush(img, t)
        for actor in scene.actors:
            if not actor.t0 <= t <= actor.t1:
                continue
            sprite = sprite_at_height(actor.sprite, round(actor.height * self.height), LO, HI)
            sh, sw = sprite.rgb.shape[:2]
            # A small walking bob so a person never moves in a perfectly straight line.
            bob = 0.006 * self.height * math.sin(2 * math.pi * 1.8 * (t - actor.t0))
            left = round(actor.centre_x(t) * self.width - sw / 2)
            top = round(actor.feet_y * self.height - sh + bob)
            paste(img, sprite, left, top)
        img = self._light(img, t)
        rng = np.random.default_rng([self.seed, index, self.width])
        oy, ox = rng.integers(0, 64, size=2)
        noisy: np.ndarray = np.add(img, self.noise[oy : oy + self.height, ox : ox + self.width])
        return noisy

    def _light(self, img: np.ndarray, t: float) -> np.ndarray:
        scene = self.scene
        gain = 1.0 + scene.drift * min(t / scene.seconds, 1.0)
        offset = 0.0
        ir = scene.ir_switch_at is not None and t >= scene.ir_switch_at
        if ir:
            # The IR floodlight is its own light source: a monochrome picture,
            # brighter than the dimming daylight it replaces.
            gain, offset = 1.1, 10.0
            img = luma_from_rgb(img)[:, :, None]
        if gain != 1.0 or ir:
            lut = np.clip(np.arange(256, dtype=np.float32) * gain + offset + 0.5, LO, HI).astype(np.uint8)
            img = np.take(lut, img)
        return np.broadcast_to(img, (self.height, self.width, 3)) if ir else img


class SyntheticSource:
    """A FrameSource over a named scene; ``index / fps`` is the frame time."""

    def __init__(
        self,
        scene: str | Scene,
        *,
        seconds: float | None = None,
        fps: float | None = None,
        width: int = 1280,
        height: int = 720,
        seed: int = 0,
    ) -> None:
        base = SCENES[scene] if isinstance(scene, str) and scene in SCENES else scene
        if isinstance(base, str):
            raise KeyError(f"unknown synthetic scene {base!r}; known: {', '.join(SCENES)}")
        if width < 64 or height < 48:
            raise ValueError(f"synthetic frames must be at least 64x48, got {width}x{height}")
        self.scene = replace(
            base,
            seconds=base.seconds if seconds is None else float(seconds),
            fps=base.fps if fps is None else float(fps),
        )
        if self.scene.seconds <= 0 or self.scene.fps <= 0:
            raise ValueError("synthetic scene seconds and fps must be positive")
        self.seed = seed
        self._size = (width, height)
        self._step = motion_step(width)
        self._small: _Renderer | None = None
        self._full: _Renderer | None = None
        self._index = 0
        self.frame_count = round(self.scene.seconds * self.scene.fps)

    @classmethod
    def from_spec(cls, spec: str, **overrides: Any) -> SyntheticSource:
        name, query = parse_spec(spec)
        kinds: dict[str, Callable[[str], Any]] = {
            "seconds": float,
            "fps": float,
            "width": int,
            "height": int,
            "seed": int,
        }
        kwargs: dict[str, Any] = {}
        for key, text in query.items():
            if key not in kinds:
                raise ValueError(f"{spec}: unknown option {key!r}; allowed: {', '.join(kinds)}")
            try:
                kwargs[key] = kinds[key](text)
            except ValueError:
                raise ValueError(f"{spec}: option {key}={text!r} is not a number") from None
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(name, **kwargs)

    @property
    def fps(self) -> float:
        return self.scene.fps

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def open(self) -> None:
        self._small = _Renderer(self.scene, self._size, self._step, self.seed)
        self._index = 0

    def _full_renderer(self) -> _Renderer:
        if self._full is None:
            self._full = _Renderer(self.scene, self._size, 1, self.seed)
        return self._full

    def read(self) -> Frame | None:
        if self._small is None:
            raise RuntimeError("open() the source before read()")
        if self._index >= self.frame_count:
            return None
        index = self._index
        self._index += 1
        t = index / self.scene.fps
        small = self._small.render(t, index)
        return Frame(
            t,
            index,
            luma_from_rgb(small),
            self._size,
            load_rgb=lambda: self._full_renderer().render(t, index),
            chroma=chroma_of(small),
        )

    def close(self) -> None:
        self._small = None
        self._full = None

    def truth(self, t: float) -> int:
        """How many people are in view at time t (for tests and the demo)."""
        return self.scene.persons_at(t)

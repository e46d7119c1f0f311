"""One camera frame and the port every frame source implements.

A frame always carries the small luma plane that motion detection reads on
every frame; the full-resolution RGB image is produced only when something
asks for it (a detection run, a snapshot), because on a Pi Zero 2 W copying or
converting 1280x720x3 on every frame would cost more than the motion step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

# The motion plane is about this wide; sources pick an integer step so that
# downscaling is plain striding (no interpolation, no copy until luma math).
MOTION_WIDTH = 320


class Frame:
    """A frame: source time, index, motion luma and a lazily produced RGB image.

    ``ts`` is seconds: the file's own time for recorded sources, ``time.monotonic()``
    for cameras. ``chroma`` is the mean colourfulness (0 for a grey frame) when
    the source can tell cheaply; an IR-cut switch turns it to ~0 at once.
    """

    __slots__ = ("_load_rgb", "_rgb", "chroma", "height", "index", "load_s", "luma", "ts", "width")

    def __init__(
        self,
        ts: float,
        index: int,
        luma: np.ndarray,
        size: tuple[int, int],
        *,
        rgb: np.ndarray | None = None,
        load_rgb: Callable[[], np.ndarray] | None = None,
        chroma: float | None = None,
    ) -> None:
        if rgb is None and load_rgb is None:
            raise ValueError("a frame needs its RGB image or a way to load it")
        self.ts = ts
        self.index = index
        self.luma = luma
        self.width, self.height = size
        self.chroma = chroma
        self._rgb = rgb
        self._load_rgb = load_rgb
        self.load_s = 0.0  # time the lazy RGB load took (source work, not pipeline work)

    @property
    def size(self) -> tuple[int, int]:
        """Full-resolution (width, height)."""
        return self.width, self.height

    @property
    def rgb_loaded(self) -> bool:
        return self._rgb is not None

    @property
    def rgb(self) -> np.ndarray:
        """The full-resolution HxWx3 uint8 RGB image, produced on first use."""
        if self._rgb is None:
            assert self._load_rgb is not None
            start = time.perf_counter()
            self._rgb = self._load_rgb()
            self.load_s = time.perf_counter() - start
            self._load_rgb = None
        return self._rgb

    def __repr__(self) -> str:
        return f"Frame(index={self.index}, ts={self.ts:.3f}, size={self.width}x{self.height})"


@runtime_checkable
class FrameSource(Protocol):
    """A camera, a file or a synthetic scene. ``read`` returns None at the end."""

    @property
    def fps(self) -> float: ...

    @property
    def size(self) -> tuple[int, int]: ...

    def open(self) -> None: ...

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...


class SourceBase:
    """What every real source shares: its frame rate and full-frame size (known after ``open``)."""

    _fps: float = 0.0
    _size: tuple[int, int] = (0, 0)

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        return self._size


def motion_step(width: int, target: int = MOTION_WIDTH) -> int:
    """Integer stride that brings ``width`` down to about ``target`` pixels."""
    return max(1, round(width / target))


def luma_from_rgb(rgb: np.ndarray, step: int = 1, bgr: bool = False) -> np.ndarray:
    """BT.601 luma (full range) of every ``step``-th pixel, as uint8.

    Integer weights 77/150/29 (sum 256) give Y = (77R + 150G + 29B) >> 8, within
    one level of the float formula, in uint16 arithmetic: ~0.3 ms for a
    1280x720 frame strided to 320x180 against ~12 ms for a float conversion.
    """
    small = rgb[::step, ::step] if step > 1 else rgb
    r_i, b_i = (2, 0) if bgr else (0, 2)
    y = small[..., r_i].astype(np.uint16) * 77
    y += small[..., 1].astype(np.uint16) * 150
    y += small[..., b_i].astype(np.uint16) * 29
    y += 128
    return (y >> 8).astype(np.uint8)


def chroma_of(rgb: np.ndarray, step: int = 4) -> float:
    """Mean |R-G| + |B-G| over a sparse grid: ~0 for a grey (IR) frame.

    Sparse sampling is enough: the signal only has to tell a colour day image
    from a monochrome IR image, which differ by an order of magnitude. (A
    max-minus-min over the channel axis is 10x slower in numpy.)
    """
    s = rgb[::step, ::step].astype(np.int16)
    g = s[..., 1]
    return float(np.abs(s[..., 0] - g).mean() + np.abs(s[..., 2] - g).mean())


def shrink(image: np.ndarray, factor: int) -> np.ndarray:
    """Integer-factor box downscale: the mean of each factor x factor block.

    Summing the factor² strided views in uint16 is ~10x faster than a
    reshape-and-mean, which numpy runs as a slow strided float reduction.
    """
    if factor <= 1:
        return image
    h, w = image.shape[0] // factor * factor, image.shape[1] // factor * factor
    total = np.zeros((h // factor, w // factor, image.shape[2]), np.uint16)
    for dy in range(factor):
        for dx in range(factor):
            total += image[dy:h:factor, dx:w:factor]
    total += factor * factor // 2
    total //= factor * factor
    return total.astype(np.uint8)


class WrappedSource:
    """A source that changes another's frames: its rate, size, opening and closing are the inner one's."""

    def __init__(self, inner: FrameSource) -> None:
        self.inner = inner

    @property
    def fps(self) -> float:
        return self.inner.fps

    @property
    def size(self) -> tuple[int, int]:
        return self.inner.size

    def open(self) -> None:
        self.inner.open()

    def close(self) -> None:
        self.inner.close()

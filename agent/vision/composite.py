"""Real footage made longer, and a real-photo person walked into it.

Test clips of swaying vegetation are seconds long (OpenCV's ``tree.avi`` is
68 frames), while learning clutter takes a minute. ``PingPong`` plays a clip
forwards, then backwards, and so on: a wrap-around loop would jump from the
last frame to the first, which motion reads as a frame-wide change and resets
everything; a reversal is as smooth as the footage itself.

``WalkIn`` pastes a sprite (``agent.vision.sprites``: the astronaut, the
cameraman) into every frame of another source while an ``Actor`` is on, and
recomputes the luma plane from the composited picture, so motion and the
detector both see the person. Demo and bench code, never the agent's: the
sprites need scikit-image.
"""

from __future__ import annotations

import math

import numpy as np

from agent.vision.frame import Frame, FrameSource, WrappedSource, chroma_of, luma_from_rgb, motion_step
from agent.vision.sprites import paste, sprite_at_height
from agent.vision.synthetic import Actor


class PingPong:
    """A FrameSource over ``inner``'s frames played back and forth for ``seconds``."""

    def __init__(self, inner: FrameSource, seconds: float, fps: float | None = None) -> None:
        if seconds <= 0:
            raise ValueError(f"seconds must be positive, got {seconds}")
        self.inner = inner
        self.seconds = seconds
        self._fps_override = fps
        self._frames: list[tuple[np.ndarray, np.ndarray, float | None]] = []
        self._fps = 0.0
        self._size = (0, 0)
        self._index = 0

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def size(self) -> tuple[int, int]:
        return self._size

    def open(self) -> None:
        if not self._frames:
            self.inner.open()
            while (f := self.inner.read()) is not None:
                # The RGB is decoded once and kept: a short clip is a few MB.
                self._frames.append((f.rgb, f.luma, f.chroma))
            self.inner.close()
            if len(self._frames) < 2:
                raise ValueError("PingPong needs a clip of at least two frames")
            self._fps = self._fps_override or self.inner.fps or 10.0
            h, w = self._frames[0][0].shape[:2]
            self._size = (w, h)
        self._index = 0

    def _position(self, index: int) -> int:
        n = len(self._frames)
        period = 2 * (n - 1)
        k = index % period
        return k if k < n else period - k

    def read(self) -> Frame | None:
        if not self._frames:
            raise RuntimeError("open() the source before read()")
        index = self._index
        ts = index / self._fps
        if ts >= self.seconds:
            return None
        self._index += 1
        rgb, luma, chroma = self._frames[self._position(index)]
        return Frame(ts, index, luma, self._size, rgb=rgb, chroma=chroma)

    def close(self) -> None:
        self._index = 0


class WalkIn(WrappedSource):
    """``inner``'s frames with the actors' sprites pasted in while they are on."""

    def __init__(self, inner: FrameSource, actors: tuple[Actor, ...]) -> None:
        super().__init__(inner)
        self.actors = actors

    def truth(self, t: float) -> int:
        """People in view at t (the sprites say whether they are one)."""
        from agent.vision.sprites import CUTS

        return sum(1 for a in self.actors if a.t0 <= t <= a.t1 and CUTS[a.sprite].is_person)

    def read(self) -> Frame | None:
        f = self.inner.read()
        if f is None:
            return None
        on = [a for a in self.actors if a.t0 <= f.ts <= a.t1]
        if not on:
            return f
        rgb = f.rgb.copy()
        h, w = rgb.shape[:2]
        for actor in on:
            sprite = sprite_at_height(actor.sprite, round(actor.height * h))
            sh, sw = sprite.rgb.shape[:2]
            # The same small walking bob as the synthetic scenes.
            bob = 0.006 * h * math.sin(2 * math.pi * 1.8 * (f.ts - actor.t0))
            paste(rgb, sprite, round(actor.centre_x(f.ts) * w - sw / 2), round(actor.feet_y * h - sh + bob))
        step = motion_step(w)
        return Frame(f.ts, f.index, luma_from_rgb(rgb, step), (w, h), rgb=rgb, chroma=chroma_of(rgb[::step, ::step]))

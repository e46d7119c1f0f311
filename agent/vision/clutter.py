"""Learning where the picture keeps moving without ever holding a person.

A swaying tree opens the motion gate on nearly every frame (OpenCV's
``tree.avi``: 66 of 68), and every opening used to cost a detection run that
finds nobody. This module keeps, per motion cell (``MotionDetector``'s grid,
8 px of the working image wide), how often the cell is active: an
exponential average over ``learn_s`` seconds of frame time. A cell active on
at least ``clutter_rate`` of frames is *clutter*, unless a person was
detected on it in the last ``person_hold_s`` seconds. The per-frame work is a
few ufuncs on the 300-cell grid (~9 µs on x86); the masks are redone every
``FOLD_S`` and a verdict is worked out only when a run could be due.

What the pipeline does with it, when a detection run on motion would be
due (``verdict``; not while a visit is open, when the person is tracked at
the normal cadence wherever they walk, nor on a PIR trigger):

* motion in at least ``novel_cells`` cells that are neither clutter nor its
  fringe (below) is new: run at once, on a crop around those cells rather
  than the tree. A person walking into a bush comes from somewhere that
  does not sway, and their legs, head or shadow stick out of it;
* so is something solid inside the clutter: leaves flicker, changing some
  of a cell's pixels, while a body in front of them changes whole cells,
  frame after frame. ``ODD_CLUSTER`` densely changed cells in one 3x3 block,
  each dense for ``ODD_PERSIST_S``, where the cells are rarely dense
  (a second rate, of dense frames, learns the cells where gusts do that);
* anything else is clutter only: run ``looks_per_min`` times a minute (a
  budget; any run that took in most of the clutter counts), so someone
  who stands hidden in the foliage is still found within ``60 /
  looks_per_min`` seconds.

A gust widens the swaying area by a cell or two, which would be new on
every gust. Three things keep it quiet: the moving 4-neighbours of clutter
(the fringe) count as clutter; new cells touching clutter that moves in the
same frame are its spill-over; and a run that found nobody raises the
sparse cells it was called for to ``LOOKED_BOOST`` times the threshold, so
the rest of the gust does not call again (its solid cells are left alone:
they may be someone half in view, whom the next run can see).

A detection clears its cells' rates and keeps them out of the clutter for
``person_hold_s``: they are looked at in full, then relearnt. A frame-wide
change (``agent.vision.relearn``) forgets all rates: a re-aimed camera or
the IR picture moves differently, and relearning costs a few seconds to a
minute of normal detection, which is the safe direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from agent.config_vision import ClutterConfig

Box = tuple[float, float, float, float]
Verdict = Literal["novel", "clutter", "none"]
FRINGE_RATE = 0.25  # of clutter_rate: a neighbour of clutter that has moved at all is fringe
DENSE_FILL = 0.7  # share of a cell's pixels changed: a solid thing in front, not leaves flickering
ODD_DENSE_RATE = 0.5  # of clutter_rate: a clutter cell this rarely dense, dense now, is odd
ODD_CLUSTER = 3  # odd cells within one 3x3 block: a body, where a gust scatters single cells
LOOKED_BOOST = 3.0  # x clutter_rate: cells a look found empty stay clutter ~learn_s x ln 3
ODD_PERSIST_S = 0.3  # ... and each dense this long without a break: a body stays, leaves flick
FOLD_S = 0.5  # the per-frame tallies go into the rates this often: the map changes slowly


@dataclass
class ClutterStats:
    """Counters for the replay summary (``xl-agent replay``), the bench and the tests; not in health."""

    suppressed: int = 0  # motion frames whose run was skipped because only clutter moved
    budget_looks: int = 0  # runs on clutter-only motion, within the budget
    novel: int = 0  # verdicts of new motion: outside the clutter, or something solid inside it
    novel_dense: int = 0  # of those, where the solid thing alone was enough
    resets: int = 0  # forgotten after a frame-wide change
    clutter_cells: int = 0  # at the last fold


class ClutterMap:
    """Per-cell "moves often, never had a person" statistics; one per pipeline.

    ``observe`` runs on every frame and only tallies (a few small ufuncs);
    the rates and the clutter mask are brought up to date every ``FOLD_S``,
    and ``verdict`` is worked out only when the pipeline could run the
    detector, at most ``detect_fps`` times a second.
    """

    def __init__(self, config: ClutterConfig) -> None:
        self.config = config
        self.stats = ClutterStats()
        self._shape: tuple[int, int] | None = None
        self._last_look = -math.inf
        self._novel: np.ndarray | None = None  # the cells behind the last "novel" verdict

    def _setup(self, shape: tuple[int, int]) -> None:
        self._shape = shape
        self._rate = np.zeros(shape, np.float32)  # share of frames active, over ~learn_s
        self._dense = np.zeros(shape, np.float32)  # the same for densely changed (DENSE_FILL)
        self._hold = np.full(shape, -math.inf)  # not clutter before this time (a person was here)
        self._active_n = np.zeros(shape, np.uint16)  # tallies since the last fold
        self._dense_n = np.zeros(shape, np.uint16)
        self._frames = 0
        self._fold_ts: float | None = None
        self._since = np.full(shape, math.inf)  # start of each cell's current dense run
        self._active = np.zeros(shape, bool)  # the last frame's
        self._dense_now = np.zeros(shape, bool)
        self._learnt = np.zeros(shape, bool)  # clutter and its fringe, at the last fold
        self._clutter = np.zeros(shape, bool)
        self._rarely_dense = np.ones(shape, bool)

    # -- learning -------------------------------------------------------------
    def reset(self) -> None:
        """Forget the rates (a frame-wide change); keep where people were seen."""
        if self._shape is not None:
            for a in (self._rate, self._dense, self._active_n, self._dense_n):
                a.fill(0)
            self._frames = 0
            self._fold_ts = None
            self._learnt.fill(False)
            self._clutter.fill(False)
            self._rarely_dense.fill(True)
        self._last_look = -math.inf
        self._novel = None
        self.stats.resets += 1

    def observe(self, ts: float, counts: np.ndarray | None, need: int, cell_pixels: int) -> None:
        """Tally one frame's changed-pixel counts per cell (None: a muted frame)."""
        if counts is None:
            if self._shape is not None:
                self._active.fill(False)
            return
        if self._shape != counts.shape:
            self._setup(counts.shape)
        active, dense = self._active, self._dense_now
        np.greater_equal(counts, need, out=active)
        np.greater_equal(counts, max(need, math.ceil(DENSE_FILL * cell_pixels)), out=dense)
        self._active_n += active
        self._dense_n += dense
        self._frames += 1
        np.minimum(self._since, ts, out=self._since)
        np.copyto(self._since, math.inf, where=~dense)
        if self._fold_ts is None:
            self._fold_ts = ts
        elif ts - self._fold_ts >= FOLD_S:
            self._fold(ts)

    def _fold(self, ts: float) -> None:
        assert self._fold_ts is not None
        # An average over time, not frames: the same seconds at 5 or 15 fps.
        keep = np.float32(math.exp(-(ts - self._fold_ts) / self.config.learn_s))
        n = np.float32(max(self._frames, 1))
        for rate, tally in ((self._rate, self._active_n), (self._dense, self._dense_n)):
            rate *= keep
            rate += (1 - keep) / n * tally
            tally.fill(0)
        self._frames = 0
        self._fold_ts = ts
        self._remask(ts)

    def _remask(self, ts: float) -> None:
        c = self.config
        free = self._hold < ts
        clutter = (self._rate >= c.clutter_rate) & free
        fringe = _grow(clutter) & (self._rate >= FRINGE_RATE * c.clutter_rate) & free
        self._clutter = clutter
        self._learnt = clutter | fringe
        self._rarely_dense = self._dense < ODD_DENSE_RATE * c.clutter_rate
        self.stats.clutter_cells = int(clutter.sum())

    # -- the verdict -------------------------------------------------------------
    def verdict(self, ts: float) -> Verdict:
        """What the last frame's motion is: new, only clutter, or none at all."""
        self._novel = None
        active = self._active
        if self._shape is None or not active.any():
            return "none"
        learnt = self._learnt
        # A gust spills a cell or two past the swaying area, next to leaves
        # that move now; someone walking in moves apart from them first.
        novel = active & ~learnt & ~_grow(active & learnt, diagonal=True)
        moved = int(novel.sum())
        # Leaves flicker: some of a cell's pixels change. Someone in front of
        # them changes the whole cell, frame after frame, which the tree does
        # only in gusts, and the cells where it does have a dense rate of their own.
        odd = self._dense_now & learnt & self._rarely_dense & (self._since <= ts - ODD_PERSIST_S)
        if odd.any() and _block3(odd) >= ODD_CLUSTER:
            novel |= odd
        if int(novel.sum()) >= self.config.novel_cells:
            self._novel = novel
            self.stats.novel += 1
            self.stats.novel_dense += moved < self.config.novel_cells
            return "novel"
        return "clutter"

    def novel_box(self, cell_w: float, cell_h: float) -> Box | None:
        """Normalised box around the cells of the last "novel" verdict."""
        if self._novel is None:
            return None
        rows, cols = np.nonzero(self._novel)
        return (
            float(cols.min()) * cell_w,
            float(rows.min()) * cell_h,
            min(1.0, float(cols.max() + 1) * cell_w),
            min(1.0, float(rows.max() + 1) * cell_h),
        )

    # -- the budget ------------------------------------------------------------
    def budget_due(self, ts: float) -> bool:
        """A run on clutter-only motion is allowed now (and is counted as taken)."""
        if self.config.looks_per_min <= 0 or ts - self._last_look < 60.0 / self.config.looks_per_min:
            self.stats.suppressed += 1
            return False
        self._last_look = ts
        self.stats.budget_looks += 1
        return True

    def ran(self, ts: float, region: Box, cell_w: float, cell_h: float) -> None:
        """Any detector run on ``region`` (normalised): if it took in most of
        the clutter, it was as good as a budget look, and the next is not due
        for another ``60 / looks_per_min`` s."""
        if self._shape is None or not self._clutter.any():
            return
        r1, r2, c1, c2 = self._cells(region, cell_w, cell_h)
        if 2 * int(self._clutter[r1:r2, c1:c2].sum()) >= int(self._clutter.sum()):
            self._last_look = max(self._last_look, ts)

    # -- what the detector said --------------------------------------------------
    def looked(self, region: Box, cell_w: float, cell_h: float) -> None:
        """A run called by new motion found nobody in ``region`` (normalised):
        what moved there sparsely is clutter now, for about ``learn_s``
        (LOOKED_BOOST times the threshold, decaying), so the next frames of
        the same gust do not call again."""
        if self._novel is None or self._shape is None:
            return
        r1, r2, c1, c2 = self._cells(region, cell_w, cell_h)
        # Not the solidly changed cells: they may be someone still half out
        # of view, whom the next look, a moment later, can see.
        sparse = self._active[r1:r2, c1:c2] & ~self._dense_now[r1:r2, c1:c2]
        boost = np.float32(min(1.0, LOOKED_BOOST * self.config.clutter_rate))
        inside = self._rate[r1:r2, c1:c2]
        np.maximum(inside, boost, out=inside, where=sparse)
        self._novel = None
        self._remask(self._fold_ts if self._fold_ts is not None else -math.inf)

    def person_at(self, ts: float, boxes: list[Box], cell_w: float, cell_h: float) -> None:
        """A person was detected in these normalised boxes: not clutter there."""
        if self._shape is None:
            return
        for box in boxes:
            r1, r2, c1, c2 = self._cells(box, cell_w, cell_h)
            self._rate[r1:r2, c1:c2] = 0.0
            self._dense[r1:r2, c1:c2] = 0.0
            self._hold[r1:r2, c1:c2] = ts + self.config.person_hold_s
        self._remask(ts)

    def _cells(self, box: Box, cell_w: float, cell_h: float) -> tuple[int, int, int, int]:
        assert self._shape is not None
        rows, cols = self._shape
        x1, y1, x2, y2 = box
        c1, c2 = max(0, int(x1 / cell_w)), min(cols, math.ceil(x2 / cell_w))
        r1, r2 = max(0, int(y1 / cell_h)), min(rows, math.ceil(y2 / cell_h))
        return r1, r2, c1, c2

    @property
    def clutter(self) -> np.ndarray | None:
        """Clutter cells as of the last fold (for tests and a debug view)."""
        return self._clutter if self._shape is not None else None


def _block3(mask: np.ndarray) -> int:
    """The most ``mask`` cells in any 3x3 block of the grid."""
    padded = np.pad(mask.astype(np.uint8), 1)
    rows, cols = mask.shape
    total = np.zeros((rows, cols), np.uint8)
    for dr in range(3):
        for dc in range(3):
            total += padded[dr : dr + rows, dc : dc + cols]
    return int(total.max())


def _grow(mask: np.ndarray, diagonal: bool = False) -> np.ndarray:
    """The cells adjacent to ``mask`` (4-adjacent, or 8 with ``diagonal``), not the mask itself."""
    out = np.zeros_like(mask)
    rows = mask.copy()
    if diagonal:
        rows[:, 1:] |= mask[:, :-1]
        rows[:, :-1] |= mask[:, 1:]
    out[1:] |= rows[:-1]
    out[:-1] |= rows[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    out &= ~mask
    return out

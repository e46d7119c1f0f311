"""Looking at the whole frame after a frame-wide change.

When most of the picture changes at once — a cut, a lamp switched on, the
IR-cut filter, a person or a car right in front of the lens — motion cannot
tell what happened, resets its background and is muted while it re-learns
(``MotionSettings.cooldown_s``). That is exactly when something may be there,
so the pipeline looks instead of waiting:

* on the frame of the change, and then every ``1 / relearn_fps`` s while the
  mute lasts, it examines the whole frame plus square tiles across it. The
  whole frame catches what is close to the lens; the tiles catch a person of
  a third to half the frame height, whom the model misses when a 16:9 frame
  is squeezed into its square input (model card: full-frame recall 24/47 at
  35–60 % of the height against 46/47 in a square crop);
* the regions of one look are merged into one observation, so the visit
  tracker's confirmation (two looks out of three) works as for crops;
* it stops until the next change after ``EMPTY_LOOKS_TO_STOP`` looks in a
  row that found nobody (a light change in an empty yard costs two looks), or
  as soon as a look ends with a visit open: the visit's own re-checks of the
  person's box take over. Motion comes back when the mute ends and covers
  anyone who arrives later.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from agent.vision.motion import MotionResult
from agent.vision.tracker import Box, DetectionLike

Region = tuple[int, int, int, int]
LookRegions = Callable[[int, int], list[Region]]
EMPTY_LOOKS_TO_STOP = 2
DUPLICATE_IOU = 0.5  # the same person seen in two overlapping tiles


def whole_and_tiles(width: int, height: int) -> list[Region]:
    """The whole frame, then the fewest squares of the frame's short side that
    cover it (evenly spaced, overlapping): 3 regions for 4:3 to 2:1 frames."""
    regions: list[Region] = [(0, 0, width, height)]
    side = min(width, height)
    long = max(width, height)
    n = math.ceil(long / side)
    if n < 2:
        return regions
    starts = [round(i * (long - side) / (n - 1)) for i in range(n)]
    if width >= height:
        regions += [(x, 0, x + side, height) for x in starts]
    else:
        regions += [(0, y, width, y + side) for y in starts]
    return regions


def whole_only(width: int, height: int) -> list[Region]:
    return [(0, 0, width, height)]


def _iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def merge(detections: Sequence[DetectionLike]) -> list[DetectionLike]:
    """Best first, dropping a box that mostly repeats a better one (overlapping
    tiles see the same person twice, which would double the visit's count)."""
    kept: list[DetectionLike] = []
    for d in sorted(detections, key=lambda d: d.score, reverse=True):
        if all(_iou(d.box, k.box) < DUPLICATE_IOU for k in kept):
            kept.append(d)
    return kept


class LookSchedule:
    """When the next look is due; one per pipeline."""

    def __init__(self, fps: float) -> None:
        self.fps = fps
        self.last = -math.inf
        self.empty = 0  # looks in a row that found nobody, since the last change
        self.done = False  # a visit is open: its own re-checks cover the person

    def due(self, ts: float, result: MotionResult) -> bool:
        if self.fps <= 0 or result.state != "cooldown":
            return False
        if result.recalibrated is not None:
            self.empty, self.done = 0, False  # new picture: whatever the last looks saw is stale
        if self.done or self.empty >= EMPTY_LOOKS_TO_STOP:
            return False
        # Only looks count towards the rate, not crop runs before the change:
        # the first frame after a cut is examined even if the old picture was
        # a moment ago. A flicker of changes restarts the mute, not the cadence.
        return ts - self.last >= 1.0 / self.fps

    def looked(self, ts: float, found: bool, visit_open: bool) -> None:
        self.last = ts
        self.empty = 0 if found else self.empty + 1
        self.done = found and visit_open

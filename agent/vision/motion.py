"""Motion detection on the luma plane, numpy only.

Per frame, at a working width of ~160 px (an integer stride of the luma
plane, which is already the camera's low-res stream):

1. difference against a running-average background, kept in int16 fixed
   point (value x 128) so the whole step is six small integer ufunc calls;
2. threshold, then drop masked pixels (privacy areas, roads, trees);
3. count changed pixels per cell (8 px wide, 4–8 rows high) — the "majority"
   filter that removes sensor-noise speckle instead of an erosion;
4. cells with enough change are dilated by one cell (shifted ORs) and
   grouped into 4-connected regions; regions smaller than ``min_area`` drop.

When much of the frame changes at once, or the picture turns grey (the IR-cut
filter switching at dusk) or colour again, that is light, not motion: the
background is reset and motion is muted for a short cool-down.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from typing import Any, NamedTuple

import numpy as np

from agent.vision.masks import Polygon, rasterize

Box = tuple[float, float, float, float]

FIX = 128  # fixed-point scale of the background: 255 * 128 still fits int16
_WORD: dict[int, type[np.unsignedinteger[Any]]] = {2: np.uint16, 4: np.uint32, 8: np.uint64}
ABSORB_EVERY = 8  # selective background update: see process()
CELL_W = 8  # one uint64 holds the 8 bool bytes of a cell row (see _cell_counts)
_BYTE_SUM = np.uint64(0x0101010101010101)


@dataclass(frozen=True, slots=True)
class MotionSettings:
    threshold: int = 20  # luma levels a pixel must differ from the background
    cell_fraction: float = 0.25  # share of a cell's pixels that must change
    min_area: float = 0.004  # smallest region that counts, as a fraction of the frame
    alpha: float = 1 / 16  # background learning rate per frame, rounded to 1/2^k
    work_width: int = 160  # pixels across the frame that motion works on
    global_fraction: float = 0.55  # more of the frame than this changing at once is light
    warmup_s: float = 1.0  # learn the scene this long after start, reporting nothing
    cooldown_s: float = 1.5  # mute motion this long after a light change
    chroma_drop: float = 0.3  # colour falling below this share of its recent level = IR on
    grey_chroma: float = 2.5  # below this a frame is monochrome (for the IR-off check)
    masks: tuple[Polygon, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("threshold", 1 <= self.threshold <= 200, "an integer 1..200 (luma levels)"),
            ("cell_fraction", 0.0 < self.cell_fraction <= 1.0, "a fraction in (0, 1]"),
            ("min_area", 0.0 <= self.min_area < 1.0, "a fraction of the frame in [0, 1)"),
            ("alpha", 0.0 < self.alpha <= 0.5, "a learning rate in (0, 0.5]"),
            ("work_width", 32 <= self.work_width <= 480, "pixels, 32..480"),
            ("global_fraction", 0.05 < self.global_fraction <= 1.0, "a fraction in (0.05, 1]"),
            ("warmup_s", 0.0 <= self.warmup_s <= 60.0, "seconds, 0..60"),
            ("cooldown_s", 0.0 <= self.cooldown_s <= 60.0, "seconds, 0..60"),
            ("chroma_drop", 0.0 <= self.chroma_drop < 1.0, "a ratio in [0, 1)"),
            ("grey_chroma", 0.0 <= self.grey_chroma <= 50.0, "a colourfulness 0..50"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"motion.{name}={getattr(self, name)!r}: expected {expected}")

    @property
    def learn_shift(self) -> int:
        return max(1, round(-math.log2(self.alpha)))


# What an installer chooses from; every value can still be overridden.
PRESETS: dict[str, dict[str, Any]] = {
    "low": {"threshold": 30, "cell_fraction": 0.35, "min_area": 0.01},
    "medium": {"threshold": 20, "cell_fraction": 0.25, "min_area": 0.004},
    "high": {"threshold": 12, "cell_fraction": 0.15, "min_area": 0.0015},
}
SETTING_NAMES = frozenset(f.name for f in fields(MotionSettings))


def settings_for(sensitivity: str = "medium", **overrides: Any) -> MotionSettings:
    if sensitivity not in PRESETS:
        raise ValueError(f"sensitivity={sensitivity!r}: expected one of {', '.join(PRESETS)}")
    unknown = set(overrides) - SETTING_NAMES
    if unknown:
        raise ValueError(f"unknown motion setting {sorted(unknown)[0]!r}")
    return replace(MotionSettings(), **{**PRESETS[sensitivity], **overrides})


class MotionResult(NamedTuple):
    # A NamedTuple, not a frozen dataclass: one is built per frame and this
    # is 3x cheaper to construct.
    boxes: tuple[Box, ...]  # normalised x1, y1, x2, y2 of each moving region
    fraction: float  # share of the (unmasked) frame covered by moving cells
    changed: float  # share of unmasked pixels that differ from the background
    state: str  # "warmup", "cooldown" or "watching"
    recalibrated: str | None = None  # "light" or "ir" on the frame that reset the model

    @property
    def motion(self) -> bool:
        return bool(self.boxes)

    def union(self) -> Box | None:
        if not self.boxes:
            return None
        x1, y1, x2, y2 = zip(*self.boxes, strict=True)
        return min(x1), min(y1), max(x2), max(y2)


class MotionDetector:
    """Stateful per camera; feed it every luma frame in order."""

    def __init__(self, settings: MotionSettings | None = None) -> None:
        self.settings = settings or MotionSettings()
        self.frames = 0
        self.recalibrations = 0
        self.reasons: Counter[str] = Counter()
        self._shape: tuple[int, int] | None = None
        self._bg: np.ndarray | None = None
        self._mute_until = -math.inf
        self._muted_state = "warmup"
        self._chroma_level: float | None = None
        self._monochrome: bool | None = None
        self._ir_level: float | None = None  # recent colourfulness, for the IR state
        self._learn_steps = 0
        # Changed pixels per cell on the last frame that was watched (None
        # while muted): what agent.vision.clutter learns from. A reference to
        # the per-frame array, not a copy.
        self.cell_counts: np.ndarray | None = None

    # -- setup --------------------------------------------------------------
    def _setup(self, height: int, width: int) -> None:
        s = self.settings
        step = max(1, round(width / s.work_width))
        rows, cols = -(-height // step), -(-width // step)
        # Cells are CELL_W wide; pick a height that tiles the rows exactly if
        # one does, else drop the last partial cell row (under 8 px of work image).
        cols_used = cols - cols % CELL_W
        cell_h = next((c for c in (8, 6, 5, 4) if rows % c == 0), 8)
        rows_used = rows - rows % cell_h
        if cols_used < CELL_W or rows_used < cell_h:
            raise ValueError(f"luma plane {width}x{height} is too small for motion detection")
        self._step, self._cell_h = step, cell_h
        self._rows, self._cols = rows_used, cols_used
        self._slice = (slice(0, rows_used * step, step), slice(0, cols_used * step, step))
        self._words = _WORD.get(step) if width % step == 0 else None
        self._sample_buf = np.empty((rows_used, cols_used), np.uint8)
        self._cur = np.empty((rows_used, cols_used), np.int16)
        self._diff = np.empty_like(self._cur)
        self._abs = np.empty_like(self._cur)
        self._changed = np.empty((rows_used, cols_used), bool)
        masked = rasterize(list(s.masks), cols, rows)[:rows_used, :cols_used]
        self._valid = ~masked if masked.any() else None
        self._valid_pixels = int(rows_used * cols_used - masked.sum())
        self._grid = (rows_used // cell_h, cols_used // CELL_W)
        self._row_starts = np.arange(0, rows_used, cell_h)
        cells_valid = (~masked).reshape(self._grid[0], cell_h, self._grid[1], CELL_W).sum(axis=(1, 3))
        self._valid_cells = max(1, int((cells_valid > 0).sum()))
        self._need = max(1, math.ceil(s.cell_fraction * cell_h * CELL_W))
        self._threshold = s.threshold * FIX
        self._learn_shift = max(1, s.learn_shift - 1)
        # Cell geometry in normalised frame coordinates.
        self._cell_nw = CELL_W * step / width
        self._cell_nh = cell_h * step / height
        self._min_cells = s.min_area / (self._cell_nw * self._cell_nh)
        grid_r, grid_c = self._grid
        self._row_full = (1 << grid_c) - 1
        self._board_w1 = grid_c + 1  # one guard bit after every row
        self._board_buf = np.zeros((grid_r, grid_c + 1), bool)
        self._board_inside = sum(self._row_full << (r * self._board_w1) for r in range(grid_r))
        self._shape = (height, width)
        self._bg = None

    @property
    def cell_need(self) -> int:
        """Changed pixels that make a cell active (count >= this)."""
        return self._need

    @property
    def cell_pixels(self) -> int:
        return self._cell_h * CELL_W

    @property
    def cell_size(self) -> tuple[float, float]:
        """A cell's (width, height) as a fraction of the frame."""
        return self._cell_nw, self._cell_nh

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of motion cells, once the first frame has set it up."""
        return self._grid

    def reset(self) -> None:
        """Forget the background (e.g. after the camera was re-aimed)."""
        self._bg = None

    @property
    def monochrome(self) -> bool | None:
        """True while the picture is grey (the IR light is on); None before any colour information."""
        return self._monochrome

    def set_masks(self, masks: tuple[Polygon, ...]) -> None:
        """New masks, keeping the learned background: a redrawn mask must not cost a re-warm-up."""
        self.settings = replace(self.settings, masks=tuple(masks))
        if self._shape is not None:
            background = self._bg
            self._setup(*self._shape)
            self._bg = background

    # -- per frame ----------------------------------------------------------
    def process(self, luma: np.ndarray, ts: float, chroma: float | None = None) -> MotionResult:
        if luma.ndim != 2 or luma.dtype != np.uint8:
            raise ValueError(f"expected an HxW uint8 luma plane, got {luma.shape} {luma.dtype}")
        if self._shape != luma.shape:
            self._setup(*luma.shape)
        self.frames += 1
        self.cell_counts = None
        if chroma is not None:
            self._watch_ir(chroma)
        cur = self._sample(luma)
        if self._bg is None:
            self._bg = cur.copy()
            self._mute(ts, self.settings.warmup_s, "warmup")
            self._chroma_level = chroma
            return MotionResult((), 0.0, 0.0, "warmup")

        diff, changed = self._diff, self._changed
        np.subtract(cur, self._bg, out=diff)
        np.abs(diff, out=self._abs)
        np.greater(self._abs, self._threshold, out=changed)
        if self._valid is not None:
            np.logical_and(changed, self._valid, out=changed)
        muted = ts < self._mute_until
        if muted:
            # Learn fast while muted so the model settles on the new light quickly.
            np.right_shift(diff, 1, out=diff)
            np.add(self._bg, diff, out=self._bg)
        elif self.frames & 1:
            # Learning on every other frame at twice the rate is the same
            # time constant for half the cost.
            np.right_shift(diff, self._learn_shift, out=diff)
            self._learn_steps += 1
            if self._learn_steps % ABSORB_EVERY:
                # Pixels that differ now are mostly the mover: keep them out of
                # the background, or a walker leaves a ghost trail that merges
                # with whatever else moves. Every ABSORB_EVERY-th step they do
                # learn, so a parked car or a moved chair fades out (~30 s).
                np.copyto(diff, 0, where=changed)
            np.add(self._bg, diff, out=self._bg)

        counts = self._cell_counts(changed)
        share = np.count_nonzero(changed) / self._valid_pixels
        reason = self._light_change(share, chroma)
        if reason is not None:
            self._recalibrate(ts, reason)
            return MotionResult((), 0.0, share, "cooldown", reason)
        if muted:
            return MotionResult((), 0.0, share, self._muted_state)

        self.cell_counts = counts
        if counts.max() < self._need:
            return MotionResult((), 0.0, share, "watching")
        boxes, cells = self._regions(counts >= self._need)
        return MotionResult(tuple(boxes), cells / self._valid_cells, share, "watching")

    def _sample(self, luma: np.ndarray) -> np.ndarray:
        """Every step-th pixel of every step-th row, times FIX, into self._cur."""
        cur, buf = self._cur, self._sample_buf
        if self._step == 1:
            np.multiply(luma[self._slice], FIX, out=cur, dtype=np.int16)
        elif self._words is not None and luma.flags.c_contiguous:
            # Read each row as little-endian words of `step` pixels and shift
            # the word right by 8*(step-1)-7: what is left is the word's last
            # pixel times 128 (FIX) with its neighbour's top 7 bits below —
            # under one luma level of dither, which cancels between frame and
            # background (and the last pixel of a group is as good a sample as
            # the first). One ufunc with a contiguous inner loop, where a
            # strided uint8 gather plus a multiply take two, both slower.
            words = luma[:: self._step].view(self._words)[:, : self._cols]
            np.right_shift(words, 8 * (self._step - 1) - 7, out=cur, casting="unsafe")
        else:
            np.copyto(buf, luma[self._slice])
            np.multiply(buf, FIX, out=cur, dtype=np.int16)
        return cur

    def _cell_counts(self, changed: np.ndarray) -> np.ndarray:
        # Each uint64 holds one cell row of 8 bool bytes. Summing the cell's
        # rows keeps every byte < 256 (at most 8 per byte), and multiplying by
        # 0x0101..01 adds all 8 bytes into the top one: a whole 8xN cell count
        # in three ufunc calls instead of a slow strided reduction.
        summed = np.add.reduceat(changed.view(np.uint64), self._row_starts, axis=0)
        summed *= _BYTE_SUM
        return summed >> np.uint64(56)

    def _light_change(self, share: float, chroma: float | None) -> str | None:
        s = self.settings
        if share > s.global_fraction:
            return "light"
        if chroma is None:
            return None
        level = self._chroma_level
        self._chroma_level = chroma if level is None else 0.9 * level + 0.1 * chroma
        if level is None:
            return None
        if level > 2 * s.grey_chroma and chroma < s.chroma_drop * level:
            return "ir"  # colour → grey: the IR-cut filter moved in
        if level < s.grey_chroma and chroma > 2 * s.grey_chroma:
            return "ir"  # grey → colour at dawn
        return None

    def _watch_ir(self, chroma: float) -> None:
        # Apart from _light_change's own level, which a recalibration clears: the IR state
        # must hold through the switch's cool-down and whichever of light or colour fired.
        s, ref = self.settings, self._ir_level
        if self._monochrome is None or ref is None:
            self._monochrome, self._ir_level = chroma < 2 * s.grey_chroma, chroma
        elif not self._monochrome and ref > 2 * s.grey_chroma and chroma < s.chroma_drop * ref:
            self._monochrome, self._ir_level = True, chroma
        elif self._monochrome and chroma > 2 * s.grey_chroma and chroma * s.chroma_drop > ref:
            self._monochrome, self._ir_level = False, chroma  # colour again: dawn
        else:
            self._ir_level = 0.9 * ref + 0.1 * chroma

    def _recalibrate(self, ts: float, reason: str) -> None:
        assert self._bg is not None
        np.copyto(self._bg, self._cur)
        self._chroma_level = None
        self.recalibrations += 1
        self.reasons[reason] += 1
        self._mute(ts, self.settings.cooldown_s, "cooldown")

    def _mute(self, ts: float, seconds: float, state: str) -> None:
        self._mute_until = ts + seconds
        self._muted_state = state

    def _regions(self, active: np.ndarray) -> tuple[list[Box], int]:
        """Boxes of 4-connected groups of (dilated) active cells, and the
        number of active cells in the groups that were kept.

        The whole cell grid is one Python int ("bitboard"), each row followed
        by a zero guard bit so shifts cannot wrap between rows. Dilation is
        a few shifts and ORs, and a region is flood-filled in one bit-parallel
        step per cell of its diameter: ~10x cheaper than visiting cells in Python.
        """
        buf = self._board_buf
        buf[:, : self._grid[1]] = active
        act = int.from_bytes(np.packbits(buf, bitorder="little").tobytes(), "little")
        w1, inside = self._board_w1, self._board_inside
        wide = (act | act << 1 | act >> 1) & inside
        grown = (wide | wide << w1 | wide >> w1) & inside
        row_mask = self._row_full
        boxes: list[Box] = []
        kept = 0
        remaining = act
        while remaining:
            region = remaining & -remaining
            while True:
                more = (region | region << 1 | region >> 1 | region << w1 | region >> w1) & grown
                if more == region:
                    break
                region = more
            remaining &= ~region
            hits = region & act  # the box hugs real change, not the dilation
            n = hits.bit_count()
            if n < self._min_cells:
                continue
            kept += n
            r1 = ((hits & -hits).bit_length() - 1) // w1
            r2 = (hits.bit_length() - 1) // w1
            cols = 0
            rows = hits >> (r1 * w1)
            for _ in range(r2 - r1 + 1):
                cols |= rows & row_mask
                rows >>= w1
            c1, c2 = (cols & -cols).bit_length() - 1, cols.bit_length() - 1
            nw, nh = self._cell_nw, self._cell_nh
            boxes.append((c1 * nw, r1 * nh, min(1.0, (c2 + 1) * nw), min(1.0, (r2 + 1) * nh)))
        return boxes, kept

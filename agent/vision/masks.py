"""Polygon masks (privacy areas, roads, trees) rasterised once to a pixel grid.

Polygons come from config in normalised frame coordinates (0..1), so one mask
file fits any resolution; a pixel is inside when its centre is (even-odd rule).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Point = tuple[float, float]
Polygon = Sequence[Point]


def check_polygon(polygon: Polygon, where: str = "mask") -> list[Point]:
    """Validate one polygon: ≥3 points, each (x, y) within 0..1."""
    points: list[Point] = []
    if isinstance(polygon, str | bytes) or not isinstance(polygon, Sequence):
        raise ValueError(f"{where}: expected a list of [x, y] points, got {polygon!r:.60}")
    for i, point in enumerate(polygon):
        if isinstance(point, str | bytes) or not isinstance(point, Sequence) or len(point) != 2:
            raise ValueError(f"{where}[{i}]: expected [x, y], got {point!r:.40}")
        x, y = point
        for name, v in (("x", x), ("y", y)):
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"{where}[{i}]: {name}={v!r} must be a number in 0..1 (fraction of the frame)")
        points.append((float(x), float(y)))
    if len(points) < 3:
        raise ValueError(f"{where}: a polygon needs at least 3 points, got {len(points)}")
    return points


def rasterize(polygons: Sequence[Polygon], width: int, height: int) -> np.ndarray:
    """Boolean HxW array, True inside any of the polygons."""
    inside_any = np.zeros((height, width), dtype=bool)
    if not polygons:
        return inside_any
    px = (np.arange(width, dtype=np.float64) + 0.5) / width
    py = (np.arange(height, dtype=np.float64) + 0.5) / height
    for polygon in polygons:
        pts = check_polygon(polygon)
        inside = np.zeros((height, width), dtype=bool)
        for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True):
            if y1 == y2:
                continue  # a horizontal edge never crosses a horizontal ray
            # Rows whose centre lies in [min y, max y) cross this edge once.
            rows = (py >= min(y1, y2)) & (py < max(y1, y2))
            if not rows.any():
                continue
            x_cross = x1 + (py[rows] - y1) * (x2 - x1) / (y2 - y1)
            inside[rows] ^= px[None, :] < x_cross[:, None]
        inside_any |= inside
    return inside_any


class MaskCache:
    """The masks rasterised at each frame size asked for (snapshots come at the camera's full
    size, clips at their own), so a snapshot costs one array copy, not a rasterisation."""

    def __init__(self, polygons: Sequence[Polygon]) -> None:
        self.polygons = [check_polygon(p) for p in polygons]
        self._grids: dict[tuple[int, int], np.ndarray] = {}

    def at(self, width: int, height: int) -> np.ndarray | None:
        """Boolean HxW, or None when there are no masks."""
        if not self.polygons:
            return None
        grid = self._grids.get((width, height))
        if grid is None:
            grid = self._grids[(width, height)] = rasterize(self.polygons, width, height)
        return grid


def black_out(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``rgb`` with the masked pixels black; a copy when anything is masked, never the caller's frame."""
    if mask is None or not mask.any():
        return rgb
    out = rgb.copy()
    out[mask] = 0
    return out

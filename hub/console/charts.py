"""Tiny server-rendered SVG sparklines: no chart library, nothing to download."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from html import escape

from markupsafe import Markup


def sparkline(
    points: Sequence[tuple[int, float | None]],
    start_ms: int,
    end_ms: int,
    *,
    width: int = 240,
    height: int = 48,
    label: str = "",
    unit: str = "",
    warn: float | None = None,
) -> Markup:
    """A line over a fixed time window; gaps (no heartbeat in a bucket) break the line.

    The time axis is fixed to the window rather than to the data, so a device
    that was silent for hours shows the silence instead of hiding it.
    """
    pad = 3
    vals = [v for _, v in points if v is not None]
    title = escape(label)
    if not vals or end_ms <= start_ms:
        return Markup(
            f'<svg class="spark" viewBox="0 0 {width} {height}" role="img" aria-label="{title}">'
            f'<text x="{width / 2}" y="{height / 2 + 4}" text-anchor="middle" class="spark-empty">—'
            f"</text></svg>"
        )
    lo, hi = min(vals), max(vals)
    if warn is not None:
        hi = max(hi, warn)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1

    def xy(t: int, v: float) -> str:
        x = pad + (width - 2 * pad) * (t - start_ms) / (end_ms - start_ms)
        y = height - pad - (height - 2 * pad) * (v - lo) / (hi - lo)
        return f"{x:.1f},{y:.1f}"

    segments: list[list[str]] = [[]]
    prev_t: int | None = None
    step = _step(points)
    for t, v in points:
        gap = v is None or (prev_t is not None and step and t - prev_t > 1.5 * step)
        if gap and segments[-1]:
            segments.append([])
        if v is not None:
            segments[-1].append(xy(t, v))
        prev_t = t
    parts = [
        f'<svg class="spark" viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" aria-label="{title}">'
    ]
    if warn is not None:
        y = height - pad - (height - 2 * pad) * (warn - lo) / (hi - lo)
        parts.append(f'<line class="spark-warn" x1="0" x2="{width}" y1="{y:.1f}" y2="{y:.1f}"/>')
    for seg in segments:
        if len(seg) == 1:
            cx, cy = seg[0].split(",")
            parts.append(f'<circle class="spark-dot" cx="{cx}" cy="{cy}" r="1.8"/>')
        elif seg:
            parts.append(f'<polyline class="spark-line" points="{" ".join(seg)}"/>')
    last = vals[-1]
    parts.append(f"<title>{title}: {lo:g}…{max(vals):g}{escape(unit)}, {_fmt(last)}{escape(unit)}</title></svg>")
    return Markup("".join(parts))


def _step(points: Sequence[tuple[int, float | None]]) -> int:
    ts = [t for t, _ in points]
    gaps = sorted(b - a for a, b in itertools.pairwise(ts) if b > a)
    return gaps[len(gaps) // 2] if gaps else 0


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}"

"""Small inline SVG charts for report.html: bars on a log or linear x axis, a line, grouped bars.

Drawn by hand (numpy and strings only) so that writing the report costs milliseconds and needs no plotting
library at run time; each function returns one `<svg>` element with a `<title>` (its accessible name).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np

WIDTH, HEIGHT = 420, 300
LEFT, RIGHT, TOP, BOTTOM = 58, 12, 28, 44  # plot area margins
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c")


class _Axis:
    """Maps data values to pixels on [lo, hi] (log10 when `log`), with tick positions and labels."""

    def __init__(self, values: np.ndarray, pixels: tuple[float, float], log: bool, zero: bool = False):
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v) & (v > 0)] if log else v[np.isfinite(v)]
        self.log = log
        if log:
            lo, hi = (math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))) if v.size else (0, 1)
            self.lo, self.hi = float(lo), float(max(hi, lo + 1))
        else:
            lo, hi = (float(v.min()), float(v.max())) if v.size else (0.0, 1.0)
            lo = min(lo, 0.0) if zero else lo
            if not hi - lo > 1e-9 * max(abs(lo), abs(hi), 1e-290):  # one value (or round-off apart)
                hi = lo + max(abs(lo), 1.0)
            self.step = _nice_step((hi - lo) / 5)
            self.lo, self.hi = math.floor(lo / self.step) * self.step, math.ceil(hi / self.step) * self.step
        self.pixels = pixels

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.log10(np.where(x > 0, x, np.nan))
        a, b = self.pixels
        return a + (x - self.lo) / (self.hi - self.lo) * (b - a)

    def ticks(self) -> list[tuple[float, str]]:
        if self.log:
            step = max(1, math.ceil((self.hi - self.lo) / 6))
            return [(10.0**e, f"1e{e:g}") for e in np.arange(self.lo, self.hi + 0.5, step)]
        return [(t, f"{t:g}") for t in np.arange(self.lo, self.hi + self.step / 2, self.step)]


def _nice_step(raw: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= raw."""
    step = 10.0 ** math.floor(math.log10(raw))
    return step * next(m for m in (1, 2, 5, 10) if step * m >= raw)


def _frame(title: str, xlabel: str, ylabel: str, x: _Axis, y: _Axis, body: list[str], xticks=None) -> str:
    bottom, left = HEIGHT - BOTTOM, LEFT
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">',
        f"<title>{html.escape(title)}</title>",
        f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
        f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" stroke="#333"/>',
        f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{bottom}" stroke="#333"/>',
    ]
    for value, label in xticks if xticks is not None else x.ticks():
        px = float(x(value))
        parts.append(f'<line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}" stroke="#333"/>')
        parts.append(f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">{html.escape(label)}</text>')
    for value, label in y.ticks():
        py = float(y(value))
        parts.append(f'<line x1="{left - 4}" y1="{py:.1f}" x2="{left}" y2="{py:.1f}" stroke="#333"/>')
        parts.append(f'<text x="{left - 6}" y="{py + 4:.1f}" text-anchor="end">{html.escape(label)}</text>')
    parts.append(
        f'<text x="{(left + WIDTH - RIGHT) / 2}" y="{HEIGHT - 8}" text-anchor="middle">{html.escape(xlabel)}</text>'
    )
    if ylabel:
        parts.append(
            f'<text transform="translate(14 {(TOP + bottom) / 2}) rotate(-90)" text-anchor="middle">'
            f"{html.escape(ylabel)}</text>"
        )
    return "".join(parts + body + ["</svg>"])


def _x_pixels() -> tuple[float, float]:
    return LEFT + 4.0, WIDTH - RIGHT - 4.0


def _y_pixels() -> tuple[float, float]:
    return HEIGHT - BOTTOM, TOP + 4.0


def histogram(title: str, xlabel: str, edges: np.ndarray, counts: Sequence[float], log_x: bool = True) -> str:
    """Bars over the bins [edges[i], edges[i+1]) with heights `counts` (y linear from 0); the x axis spans the
    non-empty bins."""
    edges, counts = np.asarray(edges, dtype=float), np.asarray(counts, dtype=float)
    full = np.flatnonzero(counts > 0)
    x = _Axis(edges[full[0] : full[-1] + 2] if full.size else edges, _x_pixels(), log_x)
    y = _Axis(np.append(counts, 0.0), _y_pixels(), False, zero=True)
    body = []
    for lo, hi, c in zip(x(edges[:-1]), x(edges[1:]), counts):
        if c > 0 and np.isfinite(lo) and np.isfinite(hi):
            top = float(y(c))
            body.append(
                f'<rect x="{lo:.1f}" y="{top:.1f}" width="{max(hi - lo - 0.5, 0.5):.1f}" '
                f'height="{float(y(0.0)) - top:.1f}" fill="{COLORS[0]}"/>'
            )
    return _frame(title, xlabel, "", x, y, body)


def line(title: str, xlabel: str, ylabel: str, xs, ys, log: bool = True) -> str:
    """A line with point markers (log-log when `log`); an empty series gives empty axes."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    x, y = _Axis(xs, _x_pixels(), log), _Axis(ys, _y_pixels(), log)
    px, py = x(xs), y(ys)
    points = [(a, b) for a, b in zip(px.tolist(), py.tolist()) if math.isfinite(a) and math.isfinite(b)]
    body = []
    if points:
        path = " ".join(f"{a:.1f},{b:.1f}" for a, b in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{COLORS[0]}" stroke-width="1.5"/>')
        body += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{COLORS[0]}"/>' for a, b in points]
    return _frame(title, xlabel, ylabel, x, y, body)


def grouped_bars(
    title: str, xlabel: str, categories: Sequence[str], series: dict[str, Sequence[float]]
) -> str:
    """One group of bars per category, one bar per series (with a legend)."""
    values = np.asarray(list(series.values()), dtype=float).reshape(len(series), len(categories))
    x = _Axis(np.array([-0.5, len(categories) - 0.5]), _x_pixels(), False)
    y = _Axis(np.append(values.ravel(), 0.0), _y_pixels(), False, zero=True)
    width = 0.8 / max(len(series), 1)
    body = []
    for s, (name, color) in enumerate(zip(series, COLORS)):
        for c, v in enumerate(values[s].tolist()):
            lo, hi = float(x(c - 0.4 + s * width)), float(x(c - 0.4 + (s + 1) * width))
            top = float(y(v)) if math.isfinite(v) else float(y(0.0))
            body.append(
                f'<rect x="{lo:.1f}" y="{top:.1f}" width="{hi - lo - 1:.1f}" height="{float(y(0.0)) - top:.1f}" '
                f'fill="{color}"/>'
            )
        ly = TOP + 4 + 14 * s
        body.append(f'<rect x="{WIDTH - RIGHT - 90}" y="{ly}" width="10" height="10" fill="{color}"/>')
        body.append(f'<text x="{WIDTH - RIGHT - 76}" y="{ly + 9}">{html.escape(name)}</text>')
    xticks = [(float(c), label) for c, label in enumerate(categories)]
    return _frame(title, xlabel, "", x, y, body, xticks)

"""Hand-written inline SVG plots: no plotting library, no ids, no scripts, fixed-precision
coordinates, so the same figures give the same bytes and a page can hold any number of them.

(No xmlns either: inline SVG in HTML needs none, and the page must not contain an address.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 720, 320
LEFT, RIGHT, TOP, BOTTOM = 78, 20, 16, 48
INK, GRID, ACCENT, SECOND = "#1f2937", "#e5e7eb", "#b91c1c", "#2563eb"


def _c(value: float) -> str:
    return f"{value:.1f}"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above `value`."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value * (1 - 1e-12):
            return candidate
    return 10 ** (exponent + 1)


def _tick_label(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.3g}"


def _frame(title: str, x_label: str, y_label: str) -> list[str]:
    return [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" font-family="system-ui, sans-serif" font-size="12">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_c(LEFT + (WIDTH - LEFT - RIGHT) / 2)}" y="{HEIGHT - 8}" '
        f'text-anchor="middle" fill="{INK}">{escape(x_label)}</text>',
        f'<text x="14" y="{_c(TOP + (HEIGHT - TOP - BOTTOM) / 2)}" text-anchor="middle" '
        f'fill="{INK}" transform="rotate(-90 14 {_c(TOP + (HEIGHT - TOP - BOTTOM) / 2)})">'
        f"{escape(y_label)}</text>",
    ]


class _Axes:
    def __init__(
        self, x_min: float, x_max: float, y_max: float, log_x: bool, sqrt: bool = False
    ) -> None:
        self.log_x, self.sqrt = log_x, sqrt
        self.x_min, self.x_max, self.y_max = x_min, x_max, y_max

    def x(self, value: float) -> float:
        if self.log_x:
            lo, hi = math.log10(self.x_min), math.log10(self.x_max)
            share = (math.log10(max(value, self.x_min)) - lo) / (hi - lo)
        elif self.sqrt:
            share = math.sqrt(max(value, 0.0) / self.x_max)
        else:
            share = (value - self.x_min) / (self.x_max - self.x_min)
        return LEFT + min(max(share, 0.0), 1.0) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        share = min(max(value / self.y_max, 0.0), 1.0)
        share = math.sqrt(share) if self.sqrt else share
        return HEIGHT - BOTTOM - share * (HEIGHT - TOP - BOTTOM)

    def grid(self, x_ticks: Sequence[float], y_ticks: Sequence[float]) -> list[str]:
        out = []
        for t in y_ticks:
            y = _c(self.y(t))
            out.append(
                f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="{GRID}"/>'
            )
            out.append(
                f'<text x="{LEFT - 6}" y="{y}" dy="4" text-anchor="end" fill="{INK}">'
                f"{escape(_tick_label(t))}</text>"
            )
        for t in x_ticks:
            x = _c(self.x(t))
            out.append(
                f'<line x1="{x}" x2="{x}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="{GRID}"/>'
            )
            out.append(
                f'<text x="{x}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" fill="{INK}">'
                f"{escape(f'{t:g}')}</text>"
            )
        out.append(
            f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
            f'height="{HEIGHT - TOP - BOTTOM}" fill="none" stroke="{INK}"/>'
        )
        return out

    def polyline(self, xs: Sequence[float], ys: Sequence[float], colour: str, dash: bool) -> str:
        points = " ".join(f"{_c(self.x(x))},{_c(self.y(y))}" for x, y in zip(xs, ys, strict=True))
        extra = ' stroke-dasharray="5 4"' if dash else ""
        return (
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"{extra}/>'
        )


def cost_plot(
    thresholds: Sequence[float],
    validation: Sequence[float],
    test: Sequence[float],
    marks: Sequence[tuple[str, float, float]],
    currency: str,
) -> str:
    """Cost per day against the threshold (log axis); `marks` = (letter, threshold, test cost)."""
    lowest = min(min(validation), min(test))
    # Flag-everything costs dwarf the interesting region; show up to 3x the minimum.
    y_max = nice_ceiling(min(max(max(validation), max(test)), 3 * max(lowest, 1e-9)))
    x_min = 10 ** math.floor(math.log10(min(thresholds)))
    axes = _Axes(x_min, 1.0, y_max, log_x=True)
    x_ticks = [10**k for k in range(round(math.log10(x_min)), 1)]
    y_ticks = [y_max * i / 4 for i in range(5)]
    out = _frame(
        f"Cost per day against the decision threshold ({currency})",
        "decision threshold (log scale): transactions scoring at or above it are flagged",
        f"cost per day ({currency})",
    )
    out += axes.grid(x_ticks, y_ticks)
    out.append(axes.polyline(thresholds, validation, SECOND, dash=True))
    out.append(axes.polyline(thresholds, test, ACCENT, dash=False))
    for i, (letter, threshold, cost) in enumerate(marks):
        x, y = _c(axes.x(threshold)), _c(axes.y(cost))
        out.append(
            f'<line x1="{x}" x2="{x}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="{INK}" '
            'stroke-dasharray="2 3"/>'
        )
        out.append(f'<circle cx="{x}" cy="{y}" r="4" fill="{INK}"/>')
        # Staggered so labels of neighbouring thresholds do not sit on each other.
        out.append(
            f'<text x="{x}" y="{TOP + 14 + 13 * (i % 3)}" dx="4" fill="{INK}" '
            f'font-weight="bold">{escape(letter)}</text>'
        )
    legend_y = TOP + 14
    out.append(
        f'<line x1="{WIDTH - 190}" x2="{WIDTH - 165}" y1="{legend_y}" y2="{legend_y}" '
        f'stroke="{ACCENT}" stroke-width="2"/>'
        f'<text x="{WIDTH - 160}" y="{legend_y + 4}" fill="{INK}">test split</text>'
        f'<line x1="{WIDTH - 190}" x2="{WIDTH - 165}" y1="{legend_y + 16}" '
        f'y2="{legend_y + 16}" stroke="{SECOND}" stroke-width="2" stroke-dasharray="5 4"/>'
        f'<text x="{WIDTH - 160}" y="{legend_y + 20}" fill="{INK}">validation split</text>'
    )
    out.append("</svg>")
    return "".join(out)


def reliability_plot(
    bins: Sequence[tuple[float, float, float, float, int]],
    title: str = "Reliability diagram (test split)",
) -> str:
    """Observed rate against mean score per bin: (mean score, rate, low, high, rows)."""
    top = nice_ceiling(max(max(b[0] for b in bins), max(b[3] for b in bins)))
    # Square-root axes: scores crowd near zero, and a straight diagonal survives the scaling.
    axes = _Axes(0.0, top, top, log_x=False, sqrt=True)
    ticks = [top * (i / 4) ** 2 for i in range(5)]
    out = _frame(
        title,
        "mean predicted probability in the bin (square-root scale)",
        "observed positive rate, 95% interval",
    )
    out += axes.grid(ticks, ticks)
    out.append(
        f'<line x1="{_c(axes.x(0))}" y1="{_c(axes.y(0))}" x2="{_c(axes.x(top))}" '
        f'y2="{_c(axes.y(top))}" stroke="{INK}" stroke-dasharray="4 4"/>'
    )
    for mean, rate, low, high, _ in bins:
        x = _c(axes.x(mean))
        out.append(
            f'<line x1="{x}" x2="{x}" y1="{_c(axes.y(low))}" y2="{_c(axes.y(high))}" '
            f'stroke="{SECOND}" stroke-width="2"/>'
        )
        out.append(f'<circle cx="{x}" cy="{_c(axes.y(rate))}" r="4" fill="{ACCENT}"/>')
    out += _bin_sizes(bins, axes)
    out.append("</svg>")
    return "".join(out)


# Width of an `n=1,000` label at font-size 10, with a gap: labels closer than this overlap.
LABEL_WIDTH = 46


def _bin_sizes(bins: Sequence[tuple[float, float, float, float, int]], axes: _Axes) -> list[str]:
    """The rows of each bin, legibly: bins of one size (quantile bins) say it once; otherwise
    a label above a bin's interval where it does not overlap its right-hand neighbour's (scores
    crowd near zero), the table under the plot giving every bin's rows."""
    sizes = {rows for *_, rows in bins}
    if len(sizes) == 1:
        return [
            f'<text x="{_c(LEFT + 8)}" y="{TOP + 14}" font-size="11" fill="{INK}">'
            f"{sizes.pop():,} rows per bin</text>"
        ]
    out, right = [], math.inf
    for mean, _, _, high, rows in sorted(bins, reverse=True):
        x = axes.x(mean)
        if right - x < LABEL_WIDTH:
            continue
        right = x
        out.append(
            f'<text x="{_c(x)}" y="{_c(axes.y(high) - 6)}" text-anchor="middle" font-size="10" '
            f'fill="{INK}">n={rows:,}</text>'
        )
    return out[::-1]

"""The offline HTML report of `mlgitops monitor`: one file, inline SVG, no script, no network."""

from __future__ import annotations

import html
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlgitops.monitoring.summary import MonitorSummary, WindowFigures

PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31",
)  # fmt: skip
WIDTH, HEIGHT, PAD_L, PAD_R, PAD_T, PAD_B = 760, 240, 56, 150, 28, 44


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _finite(values: list[Any]) -> list[float]:
    return [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]


def chart(
    title: str,
    x_labels: list[str],
    series: list[tuple[str, list[Any]]],
    lines: tuple[tuple[str, float], ...] = (),
    bands: tuple[tuple[str, list[Any], list[Any]], ...] = (),
    bars: bool = False,
) -> str:
    """A line (or bar) chart as an <svg> element; gaps where a value is None."""
    values = [v for _, ys in series for v in _finite(ys)]
    values += [v for _, lo, hi in bands for v in _finite(lo) + _finite(hi)]
    values += [v for _, v in lines if math.isfinite(v)]
    top = max(values, default=1.0)
    bottom = min(0.0, min(values, default=0.0))
    top = top if top > bottom else bottom + 1.0
    n = max(len(x_labels), 1)
    inner_w, inner_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B

    def x(i: int) -> float:
        return PAD_L + (inner_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return PAD_T + inner_h * (1.0 - (v - bottom) / (top - bottom))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{_e(title)}">',
        f'<text x="{PAD_L}" y="16" font-size="13" font-weight="bold">{_e(title)}</text>',
        f'<rect x="{PAD_L}" y="{PAD_T}" width="{inner_w}" height="{inner_h}" fill="none" '
        'stroke="#ccc"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        v = bottom + frac * (top - bottom)
        parts.append(
            f'<text x="{PAD_L - 4}" y="{y(v) + 4:.1f}" font-size="10" text-anchor="end">'
            f"{v:.3g}</text>"
        )
    step = max(1, n // 8)
    for i in range(0, len(x_labels), step):
        parts.append(
            f'<text x="{x(i):.1f}" y="{HEIGHT - PAD_B + 14}" font-size="9" '
            f'text-anchor="middle">{_e(x_labels[i])}</text>'
        )
    for k, (name, lows, highs) in enumerate(bands):
        color = PALETTE[k % len(PALETTE)]
        for i, (lo, hi) in enumerate(zip(lows, highs, strict=False)):
            if _finite([lo]) and _finite([hi]):
                parts.append(
                    f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y(lo):.1f}" y2="{y(hi):.1f}" '
                    f'stroke="{color}" stroke-width="5" stroke-opacity="0.25"><title>'
                    f"{_e(name)} {x_labels[i]}: [{lo:.4g}, {hi:.4g}]</title></line>"
                )
    for value_name, value in lines:
        if math.isfinite(value):
            parts.append(
                f'<line x1="{PAD_L}" x2="{PAD_L + inner_w}" y1="{y(value):.1f}" '
                f'y2="{y(value):.1f}" stroke="#444" stroke-dasharray="5,4"/>'
                f'<text x="{PAD_L + inner_w + 4}" y="{y(value) + 4:.1f}" font-size="10">'
                f"{_e(value_name)}</text>"
            )
    for k, (name, ys) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        if bars:
            width = max(1.0, inner_w / n * 0.7)
            for i, v in enumerate(ys):
                if _finite([v]):
                    parts.append(
                        f'<rect x="{x(i) - width / 2:.1f}" y="{y(v):.1f}" width="{width:.1f}" '
                        f'height="{max(0.0, y(bottom) - y(v)):.1f}" fill="{color}">'
                        f"<title>{_e(x_labels[i])}: {v:.4g}</title></rect>"
                    )
        else:
            segment: list[str] = []
            runs = []
            for i, v in enumerate(ys):
                if _finite([v]):
                    segment.append(f"{x(i):.1f},{y(v):.1f}")
                elif segment:
                    runs.append(segment)
                    segment = []
            if segment:
                runs.append(segment)
            for run in runs:
                if len(run) == 1:
                    cx, cy = run[0].split(",")
                    parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{color}"/>')
                else:
                    parts.append(
                        f'<polyline fill="none" stroke="{color}" stroke-width="1.6" '
                        f'points="{" ".join(run)}"/>'
                    )
        legend_y = PAD_T + 12 * k + 8
        parts.append(
            f'<rect x="{WIDTH - PAD_R + 40}" y="{legend_y - 8}" width="9" height="9" '
            f'fill="{color}"/><text x="{WIDTH - PAD_R + 53}" y="{legend_y}" font-size="10">'
            f"{_e(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _get(windows: dict[str, WindowFigures], figure: Callable[[WindowFigures], Any]) -> list[Any]:
    """One figure of every window, in window order; None where a window lacks it."""
    return [figure(record) for record in windows.values()]


def _feature(name: str, figure: str) -> Callable[[WindowFigures], Any]:
    def read(record: WindowFigures) -> Any:
        figures = record.features.get(name)
        return getattr(figures, figure) if figures is not None else None

    return read


def _ratio(psi: list[Any], threshold: list[Any]) -> list[Any]:
    return [
        (p / t) if _finite([p]) and _finite([t]) and t > 0 else None
        for p, t in zip(psi, threshold, strict=True)
    ]


def _float(value: float | None) -> float:
    return float(value) if value is not None else math.nan


def render(summary: MonitorSummary) -> str:
    windows = summary.windows or {}
    keys = list(windows)
    features = sorted({f for r in windows.values() for f in r.features})
    alerts = summary.alerts
    status = summary.status
    colour = {"ok": "#2ca02c", "alert": "#d62728"}.get(status, "#ff7f0e")
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>mlgitops monitor: {_e(status)}</title>",
        "<style>body{font-family:sans-serif;margin:24px;max-width:1000px}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;"
        "padding:3px 6px;text-align:left}th{background:#f4f4f4}"
        ".status{color:#fff;padding:2px 8px;border-radius:3px}</style></head><body>",
        f'<h1>mlgitops monitor <span class="status" style="background:{colour}">'
        f"{_e(status)}</span></h1>",
    ]
    facts = {
        "model version": summary.model_version,
        "as of": summary.as_of,
        "rows": summary.rows,
        "windows": summary.windows_total,
        "alerts": summary.alerts_total,
        "label coverage": summary.label_coverage,
        "input": summary.input.model_dump(),
    }
    if summary.error:
        facts["error"] = summary.error
    body = ["<table>"]
    body += [f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts.items()]
    body.append("</table>")
    if summary.notes:
        body.append("<h2>Notes</h2><ul>")
        body += [f"<li>{_e(text)}</li>" for text in summary.notes]
        body.append("</ul>")
    body.append(f"<h2>Alerts ({len(alerts)})</h2>")
    if alerts:
        body.append("<table><tr><th>window</th><th>kind</th><th>subject</th><th>message</th></tr>")
        body += [
            f"<tr><td>{_e(a.window)}</td><td>{_e(a.kind)}</td><td>{_e(a.subject)}</td>"
            f"<td>{_e(a.message)}</td></tr>"
            for a in alerts[:500]
        ]
        body.append("</table>")
        if len(alerts) > 500:
            body.append(f"<p>{len(alerts) - 500} more in the JSON summary.</p>")
    else:
        body.append("<p>None.</p>")
    if keys:
        body += _charts(summary, windows, keys, features)
        body.append(
            "<h2>Windows</h2><table><tr><th>window</th><th>rows</th><th>status</th>"
            "<th>drifted</th><th>new categories</th><th>labelled</th></tr>"
        )
        for key, record in windows.items():
            feats = record.features
            drifted = ", ".join(f for f, v in sorted(feats.items()) if v.drift)
            new = ", ".join(
                f"{f}: {', '.join(sorted(v.new_categories or {}))}"
                for f, v in sorted(feats.items())
                if v.new_categories
            )
            body.append(
                f"<tr><td>{_e(key)}</td><td>{_e(record.rows)}</td>"
                f"<td>{_e(record.status)}</td><td>{_e(drifted)}</td><td>{_e(new)}</td>"
                f"<td>{_e(record.realized.labelled)}</td></tr>"
            )
        body.append("</table>")
    body.append("</body></html>")
    return "\n".join(head + body) + "\n"


def _charts(
    summary: MonitorSummary,
    windows: dict[str, WindowFigures],
    keys: list[str],
    features: list[str],
) -> list[str]:
    body = ["<h2>Input drift</h2>"]
    ratio_series = [
        (f, _ratio(_get(windows, _feature(f, "psi")), _get(windows, _feature(f, "psi_threshold"))))
        for f in features
    ]
    ratio_series.append(
        (
            "score",
            _ratio(
                _get(windows, lambda r: r.score.psi), _get(windows, lambda r: r.score.psi_threshold)
            ),
        )
    )
    body.append(
        chart(
            "PSI / its threshold (above 1 = drift)",
            keys,
            ratio_series,
            lines=(("threshold", 1.0),),
        )
    )
    missing = [(f, _get(windows, _feature(f, "missing_rate"))) for f in features]
    body.append(chart("Missing rate", keys, missing))
    body.append("<h2>Predictions</h2>")
    reference = summary.reference
    flag_rate = reference.flag_rate if reference is not None else None
    body.append(
        chart(
            "Flag rate (Wilson interval)",
            keys,
            [("flag rate", _get(windows, lambda r: r.score.flag_rate))],
            lines=(("reference", _float(flag_rate or None)),),
            bands=(
                (
                    "flag rate",
                    _get(windows, lambda r: r.score.flag_rate_low),
                    _get(windows, lambda r: r.score.flag_rate_high),
                ),
            ),
        )
    )
    body.append("<h2>Performance</h2>")
    expected_cost = reference.expected_cost_per_1000 if reference is not None else None
    body.append(
        chart(
            "Cost per 1,000 predictions",
            keys,
            [
                ("estimated (CBPE)", _get(windows, lambda r: r.estimated.cost_per_1000)),
                ("realized", _get(windows, lambda r: r.realized.cost_per_1000)),
            ],
            lines=(("reference est.", _float(expected_cost or None)),),
        )
    )
    released = reference.released if reference is not None else {}
    for name in ("fnr", "fpr"):
        body.append(
            chart(
                f"Realized {name.upper()} (Wilson interval) and estimated",
                keys,
                [
                    (f"realized {name}", _get(windows, lambda r, n=name: getattr(r.realized, n))),
                    (f"estimated {name}", _get(windows, lambda r, n=name: getattr(r.estimated, n))),
                ],
                lines=(("released", _float(released.get(name))),),
                bands=(
                    (
                        name,
                        _get(windows, lambda r, n=name: getattr(r.realized, f"{n}_low")),
                        _get(windows, lambda r, n=name: getattr(r.realized, f"{n}_high")),
                    ),
                ),
            )
        )
    body.append(
        chart(
            "Label coverage",
            keys,
            [("coverage", _get(windows, lambda r: r.realized.coverage))],
            bars=True,
        )
    )
    body.append(
        chart(
            "CUSUM of the per-window cost (slow decay)",
            keys,
            [
                ("expected cost", _get(windows, lambda r: r.cusum.expected_cost)),
                ("realized cost", _get(windows, lambda r: r.cusum.realized_cost)),
            ],
            lines=(("alarm", float(summary.cusum_h or 5.0)),),
        )
    )
    return body

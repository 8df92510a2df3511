"""The report page, rendered from the JSON twin alone.

Every figure and every data-derived string is emitted as `<data value=… data-k=PATH data-f=FMT>`
with PATH its place in the twin, so a test can read each number back and check it against the
twin, and that no other number is on the page. One file: inline CSS and SVG, no script, no
address, nothing from the clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape
from typing import Any

from mlgitops.reports import analysis, svg
from mlgitops.reports.model import ModelReport

FORMATS: dict[str, Callable[[Any], str]] = {
    # The sentence's own formats, so the page's text is the twin's sentence.
    **analysis.FORMATS,
    "money": lambda v: f"{v:,.0f}",
    # Counts per 1,000 transactions: one decimal, as the rest of the page gives them.
    "num1": lambda v: f"{v:,.1f}",
    "num3": lambda v: f"{v:.3f}",
    "num4": lambda v: f"{v:.4f}",
    "thr": lambda v: f"{v:.4g}",
    "int": lambda v: f"{v:,d}",
    "text": str,
}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#1f2937;max-width:980px;
margin:2rem auto;padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #e5e7eb}
table{border-collapse:collapse;margin:.6rem 0;font-size:.82rem}
td,th{border:1px solid #e5e7eb;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f9fafb}td.r{text-align:right;white-space:nowrap}
.headline{font-size:1.25rem;background:#fef2f2;border-left:6px solid #b91c1c;padding:1rem}
.small{font-size:.85rem;color:#4b5563}.hash{font-family:ui-monospace,monospace;font-size:.8rem}
mark{background:#fde68a}.released{font-weight:bold;background:#fef2f2}
@media print{body{margin:0}h2{break-after:avoid}svg{max-width:100%}}
"""


class Page:
    """Looks values up in the twin by dotted path and marks them up."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def get(self, path: str) -> Any:
        value: Any = self.doc
        for part in path.split("."):
            value = value[int(part)] if isinstance(value, list) else value[part]
        return value

    def v(self, path: str, fmt: str) -> str:
        value = self.get(path)
        if value is None:
            return "–"
        raw = value if fmt == "text" else json.dumps(value)
        return (
            f'<data value="{escape(str(raw))}" data-k="{path}" data-f="{fmt}">'
            f"{escape(FORMATS[fmt](value))}</data>"
        )

    def est(self, path: str, fmt: str, bare: str | None = None, br: bool = False) -> str:
        """value (low–high); `br` puts the interval on its own line (narrow table cells)."""
        if self.get(path) is None:
            return "–"
        low = self.get(f"{path}.low")
        if low is None:
            return self.v(f"{path}.value", fmt)
        return (
            f"{self.v(f'{path}.value', fmt)}{'<br>' if br else ' '}"
            f'<span class="small">({self.v(f"{path}.low", bare or fmt)}–'
            f"{self.v(f'{path}.high', fmt)})</span>"
        )


def _table(header: list[str] | None, rows: list[list[str]], right_from: int = 1) -> str:
    head = "".join(f"<th>{h}</th>" for h in header or [])
    thead = f"<thead><tr>{head}</tr></thead>" if header else ""
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="r">{cell}</td>' if i >= right_from else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _header(p: Page, report: ModelReport) -> str:
    rows = [
        ["Bento tag", p.v("lineage.bento_tag", "text")],
        ["Image", f'<span class="hash">{p.v("lineage.image", "text")}</span>'],
        ["Model hash", f'<span class="hash">{p.v("lineage.model_hash", "text")}</span>'],
        ["Data hash", f'<span class="hash">{p.v("lineage.data_hash", "text")}</span>'],
        ["Params hash", f'<span class="hash">{p.v("lineage.params_hash", "text")}</span>'],
        ["Commit", p.v("lineage.commit", "text")],
        [
            "Decision threshold",
            f"{p.v('lineage.threshold', 'thr')} (policy {p.v('lineage.threshold_policy', 'text')}"
            f", chosen on the {p.v('lineage.threshold_chosen_on', 'text')} split)",
        ],
        [
            "Data period",
            f"{p.v('data.start', 'text')} to {p.v('data.end', 'text')} "
            f"(time column {p.v('data.time_column', 'text')})"
            if report.data.start
            else "no time column",
        ],
    ]
    split_rows = [
        [
            name,
            p.v(f"data.splits.{name}.rows", "int"),
            p.v(f"data.splits.{name}.positives", "int"),
            p.v(f"data.splits.{name}.start", "text"),
            p.v(f"data.splits.{name}.end", "text"),
        ]
        for name in report.data.splits
    ]
    return (
        f"<h1>Model report: {p.v('title', 'text')}</h1>"
        '<p class="small">What this release would do in production, in figures measured on '
        "data the model never saw. Figures in brackets are 95% intervals.</p>"
        + _table(None, rows, right_from=9)
        + "<h3>Data</h3>"
        + _table(["split", "rows", "positives", "from", "to"], split_rows)
        + '<p class="small">The model is fitted on <em>train</em>, the threshold is chosen on '
        "<em>validation</em>, and every figure below is measured on <em>test</em>.</p>"
    )


def _headline(p: Page, report: ModelReport) -> str:
    assumptions = "".join(
        f"<li>{p.v(f'headline.assumptions.{i}', 'text')}</li>"
        for i in range(len(report.headline.assumptions))
    )
    return (
        "<h2>The expectation in plain words</h2>"
        f'<p class="headline" id="headline">{_sentence_html(p, report)}</p>'
        f"<p>Reviewing every flagged transaction means {p.est('headline.reviews_per_day', 'count')}"
        " reviews per day, against a capacity of "
        f"{p.v('headline.review_capacity_per_day', 'count')}. The expected cost of false alarms "
        f"and misses is {p.est('headline.cost_per_day', 'money')} "
        f"{p.v('headline.currency', 'text')} per day, at the decision threshold "
        f"{p.v('headline.threshold', 'thr')}.</p>"
        f"<p><strong>Assumptions</strong></p><ul>{assumptions}</ul>"
    )


def _sentence_html(p: Page, report: ModelReport) -> str:
    """The twin's sentence with its numbers marked up: the sentence is split at each number's
    formatted text, in order, so the page's text is the twin's sentence character for character."""
    sentence = report.headline.sentence
    out, rest = [], sentence
    figures = (*analysis.SENTENCE_RATES, *analysis.SENTENCE_COUNTS)
    values = {key: getattr(report.headline, key) for key in figures}
    for key, fmt in analysis.sentence_numbers(values):
        path = f"headline.{key}"
        text = FORMATS[fmt](p.get(path))
        before, found, after = rest.partition(text)
        if not found:
            raise ValueError(f"headline sentence lacks {path} ({text!r})")
        out.append(escape(before) + p.v(path, fmt))
        rest = after
    out.append(escape(rest))
    return "".join(out)


LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _tradeoffs(p: Page, report: ModelReport) -> str:
    t = report.tradeoffs
    currency = p.v("headline.currency", "text")
    rows, marks = [], []
    for i, (key, point) in enumerate(t.points.items()):
        base = f"tradeoffs.points.{key}"
        letter = LETTERS[i]
        marks.append((letter, point.threshold, point.cost_per_day.value))
        label = p.v(f"{base}.label", "text")
        if key == t.released:
            label = f'<span class="released">{label}</span>'
        rows.append(
            [
                f"{letter} {label}",
                p.v(f"{base}.threshold", "thr"),
                p.v(f"{base}.validation_recall", "pct"),
                p.est(f"{base}.fpr", "pct1", br=True),
                p.est(f"{base}.fnr", "pct1", br=True),
                p.est(f"{base}.reviews_per_day", "count", br=True),
                p.est(f"{base}.missed_per_day", "count", br=True),
                p.est(f"{base}.caught_per_day", "count", br=True),
                p.est(f"{base}.cost_per_day", "money", br=True),
                "yes" if point.within_capacity else "<strong>no</strong>",
            ]
        )
    curve = t.curve
    plot = svg.cost_plot(
        [c.threshold for c in curve],
        [c.validation_cost_per_day for c in curve],
        [c.test_cost_per_day for c in curve],
        marks,
        report.headline.currency,
    )
    return (
        "<h2>Launch parameters and their trade-offs</h2>"
        "<p>Each candidate threshold is chosen on the validation split and measured on the test "
        "split. Reviews are all flagged transactions; misses and catches are positives.</p>"
        + _table(
            [
                "operating point",
                "threshold",
                "recall on validation",
                "false positive rate",
                "false negative rate",
                "reviews / day",
                "misses / day",
                "caught / day",
                f"cost / day ({currency})",
                "fits capacity",
            ],
            rows,
        )
        + _same_as_released(t)
        + f"<p>{p.v('tradeoffs.why', 'text')}</p>"
        + f"<figure>{plot}<figcaption class='small'>Expected cost per day at each threshold; "
        "the letters mark the operating points of the table (dots: test split).</figcaption>"
        "</figure>"
    )


def _same_as_released(t: Any) -> str:
    """Points whose threshold is the released one, said so (their rows repeat its figures)."""
    released = t.points[t.released].threshold
    same = [
        LETTERS[i]
        for i, (key, point) in enumerate(t.points.items())
        if key != t.released and point.threshold == released
    ]
    if not same:
        return ""
    letters = same[0] if len(same) == 1 else ", ".join(same[:-1]) + " and " + same[-1]
    verb = "is" if len(same) == 1 else "are"
    return f"<p>{letters} {verb} the released threshold.</p>"


def _examples(p: Page, kind: str, title: str, report: ModelReport) -> str:
    items = getattr(report.failure_modes, kind)
    if not items:
        return f"<h3>{title}</h3><p>None in the test split.</p>"
    base = f"failure_modes.{kind}"
    header = ["feature"] + [f"score {p.v(f'{base}.{i}.score', 'num4')}" for i in range(len(items))]
    rows = []
    for j in range(len(items[0].features)):
        row = [p.v(f"{base}.0.features.{j}.name", "text")]
        for i, example in enumerate(items):
            path = f"{base}.{i}.features.{j}"
            cell = p.v(f"{path}.value", "text")
            if example.features[j].unusual:
                why = p.v(f"{path}.unusual", "text")
                cell = f"<mark>{cell}</mark><br><span class='small'>{why}</span>"
            row.append(cell)
        rows.append(row)
    return f"<h3>{title}</h3>" + _table(header, rows, right_from=99)


def _failure_modes(p: Page, report: ModelReport) -> str:
    f = report.failure_modes
    slice_rows = [
        [
            f"{p.v(f'failure_modes.slices.{i}.feature', 'text')}: "
            f"{p.v(f'failure_modes.slices.{i}.segment', 'text')}",
            p.v(f"failure_modes.slices.{i}.rows", "int"),
            p.v(f"failure_modes.slices.{i}.positives", "int"),
            p.est(f"failure_modes.slices.{i}.fnr", "pct"),
            p.est(f"failure_modes.slices.{i}.fpr", "pct"),
            p.v(f"failure_modes.slices.{i}.cost_per_1000", "money"),
            p.v(f"failure_modes.slices.{i}.excess_cost", "money"),
        ]
        for i in range(len(f.slices))
    ]
    c = f.calibration
    bins = [
        (b.mean_score, b.observed_rate.value, b.observed_rate.low, b.observed_rate.high, b.rows)
        for b in c.bins
    ]
    bin_rows = [
        [
            p.v(f"failure_modes.calibration.bins.{i}.rows", "int"),
            p.v(f"failure_modes.calibration.bins.{i}.mean_score", "num4"),
            p.est(f"failure_modes.calibration.bins.{i}.observed_rate", "num4"),
        ]
        for i in range(len(c.bins))
    ]
    currency = p.v("headline.currency", "text")
    return (
        "<h2>Failure modes</h2>"
        "<p>The most confident mistakes on the test split. Highlighted values are unusual "
        "against the training split.</p>"
        + _examples(p, "false_positives", "False alarms (highest scores)", report)
        + _examples(p, "false_negatives", "Missed positives (lowest scores)", report)
        + "<h3>Segments with the worst error</h3>"
        f"<p>Ranked by excess cost: the segment's cost of errors minus what the overall rate of "
        f"{p.v('failure_modes.overall_cost_per_1000', 'money')} {currency} per 1,000 "
        "transactions would cost on as many rows. Segments with fewer than "
        f"{p.v('failure_modes.min_slice_count', 'int')} test rows are not ranked "
        f"({p.v('failure_modes.slices_suppressed', 'int')} left out).</p>"
        + _table(
            [
                "segment",
                "rows",
                "positives",
                "false negative rate",
                "false positive rate",
                f"cost per 1,000 ({currency})",
                f"excess cost ({currency})",
            ],
            slice_rows,
        )
        + "<h3>Calibration</h3>"
        f"<p>Brier score {p.v('failure_modes.calibration.brier', 'num4')} (always predicting "
        f"the base rate: {p.v('failure_modes.calibration.brier_baseline', 'num4')}). A point on "
        "the dashed diagonal means the score is the probability it claims to be.</p>"
        + f"<figure>{svg.reliability_plot(bins)}</figure>"
        + _table(["rows", "mean score", "observed rate"], bin_rows, right_from=0)
    )


NAMES = {
    "threshold": ("decision threshold", "thr"),
    "roc_auc": ("ROC AUC", "num3"),
    "pr_auc": ("PR AUC", "num3"),
    "recall": ("recall", "pct1"),
    "fnr": ("false negative rate", "pct1"),
    "fpr": ("false positive rate", "pct1"),
    "precision": ("precision", "pct1"),
    "alerts_per_1000": ("alerts per 1,000", "num1"),
    "missed_frauds_per_1000": ("missed per 1,000", "num1"),
    "expected_cost_per_1000": ("cost per 1,000", "money"),
}


def _changes(p: Page, report: ModelReport) -> str:
    c = report.changes
    out = f"<h2>What changed since the previous release</h2><p>{p.v('changes.note', 'text')}</p>"
    if c.previous_commit is None:
        return out
    rows = []
    for i, row in enumerate(c.rows):
        name, fmt = NAMES.get(row.name, (row.name, "num4"))
        base = f"changes.rows.{i}"
        rows.append(
            [
                escape(name),
                p.est(f"{base}.current", fmt, "pct1" if fmt == "pct1" else None),
                p.est(f"{base}.previous", fmt) if row.previous else "–",
            ]
        )
    header = [
        "test-split metric",
        f"this release ({p.v('lineage.bento_tag', 'text')})",
        f"previous ({p.v('changes.previous_bento_tag', 'text')})",
    ]
    return out + _table(header, rows)


def render(report: ModelReport) -> str:
    """The whole page: a pure function of the twin."""
    p = Page(report.model_dump(mode="json"))
    body = (
        _header(p, report)
        + _headline(p, report)
        + _tradeoffs(p, report)
        + _failure_modes(p, report)
        + _changes(p, report)
        + '<p class="small">Written by the <code>report</code> stage of <code>dvc repro</code>; '
        "its JSON twin holds every figure on this page.</p>"
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Model report {escape(report.lineage.bento_tag)}</title>"
        f"<style>{CSS}</style></head><body>{body}</body></html>\n"
    )

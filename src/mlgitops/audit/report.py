"""`mlgitops audit report`: what the labelled sample says about the model in production.

`build_report` is pure (design, sample rows and annotations in, an AuditReport out);
`markdown` renders it, `plot_svg` draws the audited fraud rate per score stratum against the
model's mean score (the model report's reliability diagram).
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

import numpy as np

from mlgitops.audit import estimate
from mlgitops.audit.labels import adjudicate
from mlgitops.audit.models import (
    Agreement,
    Annotation,
    AuditReport,
    Example,
    PairAgreement,
    SampleDesign,
    SampleRow,
    StratumResult,
)
from mlgitops.reports.svg import reliability_plot

METHOD = (
    "Hajek ratio of Horvitz-Thompson totals (weights N_h / m_h over the labelled rows of each "
    "stratum); linearisation variance for stratified sampling without replacement; "
    "Clopper-Pearson interval at the effective sample size R(1-R)/V (Korn-Graubard)."
)
NAMES = {
    "precision": "precision (flagged that are fraud)",
    "fpr": "false positive rate (legit flagged)",
    "fnr": "false negative rate (fraud let through)",
    "fraud_rate": "fraud rate (all traffic)",
}
RELEASE_KEYS = {"precision": "precision", "fpr": "fpr", "fnr": "fnr"}
# Pairs of annotators listed separately once they share this many ids.
MIN_PAIR_IDS = 5


def _between_annotators(
    annotations: list[Annotation],
) -> tuple[Agreement, list[PairAgreement]]:
    by_id: dict[str, dict[str, int]] = defaultdict(dict)
    for a in annotations:
        by_id[a.id][a.annotator] = a.label
    first, second = [], []
    pairs: dict[tuple[str, str], tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for labels in by_id.values():
        names = sorted(labels)
        if len(names) < 2:
            continue
        # Rater 1 and 2 of an id: its first two annotators by name.
        first.append(labels[names[0]])
        second.append(labels[names[1]])
        for x, y in combinations(names, 2):
            pairs[(x, y)][0].append(labels[x])
            pairs[(x, y)][1].append(labels[y])
    listed = [
        PairAgreement(annotators=key, agreement=estimate.agreement(*values))
        for key, values in sorted(pairs.items())
        if len(values[0]) >= MIN_PAIR_IDS
    ]
    return estimate.agreement(first, second), listed


def build_report(
    design: SampleDesign, rows: list[SampleRow], annotations: list[Annotation]
) -> AuditReport:
    config = design.config
    by_id = {row.id: row for row in rows}
    number = {s.name: i for i, s in enumerate(design.strata)}
    adjudicated, ties = adjudicate(annotations)
    labelled_rows = [(by_id[a.id], a.label) for a in adjudicated]
    strata = np.array([number[row.stratum] for row, _ in labelled_rows], dtype=int)
    y = np.array([label for _, label in labelled_rows], dtype=float)
    f = np.array([row.label for row, _ in labelled_rows], dtype=float)
    sizes = np.array([s.population for s in design.strata], dtype=float)
    results = []
    for e in estimate.estimates(strata, y, f, sizes, config.confidence):
        key = RELEASE_KEYS.get(e.metric)
        release = design.release_metrics.get(key) if key else None
        results.append(e.model_copy(update={"release": release}))
    per_stratum, unlabelled = [], []
    for i, s in enumerate(design.strata):
        mask = strata == i
        labelled, frauds = int(mask.sum()), int(y[mask].sum())
        if s.population and not labelled:
            unlabelled.append(s.name)
        rate = frauds / labelled if labelled else None
        low, high = (
            estimate.clopper_pearson(rate, labelled, config.confidence)
            if rate is not None
            else (None, None)
        )
        per_stratum.append(
            StratumResult(
                name=s.name,
                flagged=s.flagged,
                population=s.population,
                sampled=s.sampled,
                labelled=labelled,
                frauds=frauds,
                fraud_rate=rate,
                low=low,
                high=high,
                mean_score=s.mean_score,
            )
        )
    model = [by_id[a.id].label for a in annotations]
    human = [a.label for a in annotations]
    between, pairs = _between_annotators(annotations)
    return AuditReport(
        audit_id=design.audit_id,
        model_version=design.model_version,
        threshold=design.threshold,
        confidence=config.confidence,
        population=design.population,
        sampled=design.sample_size,
        labelled=len(adjudicated),
        annotations=len(annotations),
        annotators=sorted({a.annotator for a in annotations}),
        ties=ties,
        unlabelled_strata=unlabelled,
        estimates=results,
        strata=per_stratum,
        model_vs_annotators=estimate.agreement(model, human),
        between_annotators=between,
        annotator_pairs=pairs,
        examples=_examples(by_id, annotations, config.examples),
        method=METHOD,
    )


def _examples(
    by_id: dict[str, SampleRow], annotations: list[Annotation], count: int
) -> list[Example]:
    """The ids where the annotators' labels were least likely under the model's score."""
    grouped: dict[str, dict[str, int]] = defaultdict(dict)
    for a in annotations:
        grouped[a.id][a.annotator] = a.label
    found = []
    for record_id, labels in grouped.items():
        row = by_id[record_id]
        disagree = [v for v in labels.values() if v != row.label]
        if not disagree:
            continue
        # Mean surprise over the annotators who contradicted the model.
        bits = float(np.mean([estimate.surprise(row.score, v) for v in disagree]))
        found.append(
            Example(
                id=record_id, score=row.score, model_label=row.label, labels=labels, surprise=bits
            )
        )
    found.sort(key=lambda e: (-e.surprise, e.id))
    return found[:count]


def _pct(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{100 * value:.{digits}f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _label(value: int) -> str:
    return "fraud" if value else "legit"


def markdown(report: AuditReport, plot_name: str | None = None) -> str:
    level = f"{100 * report.confidence:g}%"
    lines = [
        f"# Audit {report.audit_id}: {report.model_version}",
        "",
        f"{report.labelled} of {report.sampled} sampled predictions labelled "
        f"({report.annotations} annotations by {len(report.annotators)} annotators), out of "
        f"{report.population:,} logged; threshold {report.threshold:.4g}.",
        "",
        f"## Estimates for all logged traffic ({level} intervals)",
        "",
        f"| metric | estimate | {level} interval | labelled in denominator | "
        "release (test split) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for e in report.estimates:
        interval = "n/a" if e.low is None else f"{_pct(e.low)} - {_pct(e.high)}"
        lines.append(
            f"| {NAMES[e.metric]} | {_pct(e.estimate)} | {interval} | {e.labelled} | "
            f"{_pct(e.release)} |"
        )
    lines += ["", f"Method: {report.method}", ""]
    if report.ties:
        shown = ", ".join(report.ties[:10]) + (" ..." if len(report.ties) > 10 else "")
        lines += [f"Tied ids (left out; add an annotator): {len(report.ties)}: {shown}", ""]
    if report.unlabelled_strata:
        lines += [
            "Strata without a label (their traffic is not represented): "
            + ", ".join(report.unlabelled_strata),
            "",
        ]
    lines += [
        "## Score strata",
        "",
        "| stratum | side | logged | sampled | labelled | frauds | audited fraud rate | "
        "mean score |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in report.strata:
        rate = (
            "n/a"
            if s.fraud_rate is None
            else f"{_pct(s.fraud_rate)} ({_pct(s.low)} - {_pct(s.high)})"
        )
        side = "flagged" if s.flagged else "let through"
        lines.append(
            f"| {s.name} | {side} | {s.population:,} | {s.sampled} | {s.labelled} | {s.frauds} "
            f"| {rate} | {_pct(s.mean_score, 2)} |"
        )
    if plot_name:
        lines += ["", f"![Audited fraud rate per score stratum]({plot_name})"]
    mva, bet = report.model_vs_annotators, report.between_annotators
    lines += [
        "",
        "## Agreement (on the sample, unweighted)",
        "",
        "| between | pairs | raw agreement | Cohen's kappa |",
        "| --- | ---: | ---: | ---: |",
        f"| model and annotators | {mva.pairs} | {_pct(mva.raw)} | {_num(mva.kappa)} |",
        f"| annotators (ids with two or more) | {bet.pairs} | {_pct(bet.raw)} | "
        f"{_num(bet.kappa)} |",
    ]
    for pair in report.annotator_pairs:
        a = pair.agreement
        lines.append(
            f"| {pair.annotators[0]} and {pair.annotators[1]} | {a.pairs} | {_pct(a.raw)} | "
            f"{_num(a.kappa)} |"
        )
    lines += [
        "",
        "The sample over-represents high scores, so these agreements describe the audited "
        "rows, not all traffic (the estimates above are weighted).",
        "",
        "## Most surprising disagreements",
        "",
    ]
    if not report.examples:
        lines.append("No annotator contradicted the model.")
    else:
        lines += [
            "| id | score | model | annotators | surprise (bits) |",
            "| --- | ---: | --- | --- | ---: |",
        ]
        for e in report.examples:
            labels = ", ".join(f"{k}: {_label(v)}" for k, v in sorted(e.labels.items()))
            lines.append(
                f"| {e.id} | {e.score:.4f} | {_label(e.model_label)} | {labels} | "
                f"{e.surprise:.1f} |"
            )
    return "\n".join(lines) + "\n"


def plot_svg(report: AuditReport) -> str:
    """The reliability diagram of the audit: per stratum, the audited fraud rate (with its
    interval) against the model's mean score, as a standalone SVG file."""
    bins = [
        (s.mean_score, s.fraud_rate, s.low, s.high, s.labelled)
        for s in report.strata
        if s.fraud_rate is not None and s.low is not None and s.high is not None
    ]
    if not bins:
        return ""
    title = f"Audit {report.audit_id}: audited fraud rate per score stratum"
    svg = reliability_plot(bins, title)
    # Inline SVG needs no namespace; a file shown as an image does.
    return svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1) + "\n"

"""The gate's verdict as Markdown: the gate stage's report and the PR report's section."""

from __future__ import annotations

from mlgitops.records import GateReport


def _fmt(value: float, places: int) -> str:
    return f"{value:,.{places}f}"


def markdown(report: GateReport, title: str = "Champion / challenger gate") -> str:
    """The gate's verdict as a Markdown section (the PR report embeds the same table)."""
    lines = [f"## {title}: **{report.verdict}**", "", report.reason + ".", ""]
    if report.roc_auc is None or report.expected_cost_per_1000 is None:
        lines.append(f"Challenger {report.challenger_model_hash[:19]}, {report.n_test} test rows.")
        return "\n".join(lines) + "\n"
    lines += [
        f"Champion `{report.champion_bento_tag}` (release at `{report.base}`) and challenger "
        f"scored on the same {report.n_test:,} test rows ({report.n_positive:,} positive), each "
        f"at its own threshold ({report.champion_threshold:.4f} and "
        f"{report.challenger_threshold:.4f}). Intervals: two-sided {1 - report.alpha:.0%} "
        f"of challenger - champion; MDE: the smallest true difference this test set detects "
        f"with {report.power:.0%} power.",
        "",
        "| metric | champion | challenger | difference | interval | margin | MDE | verdict |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    rows = (
        ("ROC AUC (DeLong)", report.roc_auc, 4),
        (f"cost per 1,000 ({report.currency}, bootstrap)", report.expected_cost_per_1000, 1),
    )
    for name, diff, places in rows:
        sign = "-" if diff.better == "higher" else "+"
        lines.append(
            f"| {name} | {_fmt(diff.champion, places)} | {_fmt(diff.challenger, places)} | "
            f"{diff.difference:+,.{places}f} | [{diff.lower:+,.{places}f}, "
            f"{diff.upper:+,.{places}f}] | {sign}{diff.margin:g} | {diff.mde:,.{places}f} | "
            f"{diff.verdict} |"
        )
    if report.segments:
        lines += [
            "",
            f"Guardrail segments: cost per 1,000 ({report.currency}) within each segment, FAIL "
            "only when worse by more than the margin is shown (Bonferroni over the segments).",
            "",
            "| segment | rows | positive | difference | interval | verdict |",
            "| --- | ---: | ---: | ---: | --- | --- |",
        ]
        for g in report.segments:
            if g.verdict == "SKIPPED":
                lines.append(f"| {g.column}={g.value} | {g.n_rows:,} | {g.n_positive:,} | | | "
                             "SKIPPED (too small) |")  # fmt: skip
                continue
            lines.append(
                f"| {g.column}={g.value} | {g.n_rows:,} | {g.n_positive:,} | "
                f"{g.difference:+,.1f} | [{g.lower:+,.1f}, {g.upper:+,.1f}] | {g.verdict} |"
            )
    lines += [
        "",
        "Each evaluation on this frozen test split leaks a little of it into the choice; "
        "refresh the test period when new labelled data arrives.",
    ]
    return "\n".join(lines) + "\n"

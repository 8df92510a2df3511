"""The Markdown report of `mlgitops ab status` (the JSON result is the ExperimentStatus itself)."""

from __future__ import annotations

from mlgitops.experiment.status import ExperimentStatus

NEXT_STEP = {
    "CHALLENGER_BETTER": "Promote: commit the challenger's release as the release and set "
    "`experiment:` back to null (README, A/B and shadow experiments).",
    "CHAMPION_BETTER": "Stop: set `experiment:` back to null (or revert the commit that "
    "started it).",
    "NO_DIFFERENCE_YET": "Keep the experiment running; the test stays valid however often "
    "this status is checked.",
    "INSUFFICIENT_DATA": "Keep the experiment running until enough labels have matured.",
    "GUARDRAIL_BREACHED": "Stop: set `experiment:` back to null; the challenger breaks a "
    "guardrail whatever its primary metric.",
    "SRM": "Stop and investigate the assignment and the logging (a bad key, dropped log lines, "
    "a bot); results of this run cannot be trusted.",
}


def _num(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}"


def render_markdown(status: ExperimentStatus, currency: str) -> str:
    primary = status.primary
    unit = f" ({currency} per 1,000 transactions)" if primary.metric == "cost_per_1000" else ""
    better = "lower" if primary.lower_is_better else "higher"
    lines = [
        f"# Experiment status: **{status.verdict}**",
        "",
        status.reason[:1].upper() + status.reason[1:] + ".",
        "",
        f"Next step: {NEXT_STEP[status.verdict]}",
        "",
        f"- Mode: `{status.mode}`; challenger revision: `{status.challenger}`; "
        f"challenger share: {status.share:g}",
        f"- As of: {status.as_of}; label delay: {status.label_delay_hours:g} h "
        "(a prediction counts for outcomes once event time + delay <= as of)",
        f"- Predictions in the experiment: {status.rows:,}; lines without an arm: "
        f"{status.rows_without_arm:,}",
        *(f"- Input: {note}" for note in status.input_notes),
        "",
        "## Arms",
        "",
        f"| arm | model version | predictions | units | matured labelled | frauds | alert rate "
        f"| {primary.metric}{unit} |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for arm in status.arms:
        versions = ", ".join(f"`{v}`" for v in arm.model_versions) or "n/a"
        lines.append(
            f"| {arm.arm} | {versions} | {arm.predictions:,} | {arm.units:,} | "
            f"{arm.matured_labelled:,} | {arm.frauds:,} | {_num(arm.alert_rate)} | "
            f"{_num(arm.primary)} |"
        )
    srm = status.srm
    lines += ["", "## Sample ratio", ""]
    if srm.applicable:
        flag = "**mismatch**" if srm.mismatch else "ok"
        lines.append(
            f"Units: champion {srm.champion_units:,}, challenger {srm.challenger_units:,} "
            f"(share {_num(srm.observed_share)}, declared {srm.expected_share:g}); chi-square "
            f"{srm.chi2:.2f}, p = {srm.p_value:.3g} (mismatch below {srm.threshold:g}): {flag}."
        )
    else:
        lines.append("Not applicable in shadow mode: both models scored every row.")
    design = "paired differences per row (shadow)" if primary.paired else "two independent arms"
    lines += [
        "",
        f"## Primary metric: {primary.metric} ({better} is better)",
        "",
        f"Always-valid sequential test (mSPRT, normal mixture, tau = smallest effect worth "
        f"detecting = {primary.min_effect:g}) on {design}, alpha {primary.alpha:g}.",
        "",
        "| | value |",
        "|---|---:|",
        f"| rows tested (champion / challenger) | {primary.n_champion:,} / "
        f"{primary.n_challenger:,} |",
        f"| difference, challenger - champion | {_num(primary.estimate)} |",
        f"| {1 - primary.alpha:.0%} confidence sequence | [{_num(primary.ci_low)}, "
        f"{_num(primary.ci_high)}] |",
        f"| always-valid p-value | {primary.p_value:.4g} |",
        f"| fixed-horizon p-value (not valid when looking repeatedly) | "
        f"{primary.naive_p_value:.4g} |",
        f"| looks so far | {primary.looks:,} |",
        f"| stopped at (event time of the deciding row) | {primary.stopped_at or 'not yet'} |",
        "",
        f"Sample size: {status.need.text}.",
    ]
    if status.guardrails:
        header = "| guardrail | limit | difference | confidence sequence | status |"
        lines += ["", "## Guardrails", "", header, "|---|---:|---:|---|---|"]
        for guard in status.guardrails:
            lines.append(
                f"| {guard.name} | {guard.limit:g} | {_num(guard.estimate)} | "
                f"[{_num(guard.ci_low)}, {_num(guard.ci_high)}] | {guard.status} |"
            )
    return "\n".join(lines) + "\n"

"""`mlgitops report pr`: what a change to the model does, as Markdown for a pull request.

For any two revisions it runs the gate of stage `gate` again, the champion being the release at
`base` and the challenger the release at `head`, on `head`'s test rows (both read from Git and
the DVC cache or remote), with `head`'s gate settings. So the verdict is the one the pipeline
would reach, and the PR shows it with the intervals behind it, what changed in the data and what
the tuning chose.

A head that commits a model its gate did not pass (an experiment that lost, committed: its
release record still names the champion) is no release, whatever its release compares like: the
report says so and carries head's committed verdict, so the PR fails with it
(src/mlgitops/verdict.py). A committed PASS about another model than head's release is an error.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from mlgitops.config import GateConfig, ThresholdConfig
from mlgitops.errors import ArtifactError, ConfigError, GateError, ReleaseNotPassedError
from mlgitops.git import read_blob, resolve_commit
from mlgitops.records import GateReport, TunedParams
from mlgitops.release import ReleaseRecord
from mlgitops.revision import dvc_file_at, find_release_at, params_at, path_at, release_path
from mlgitops.stages.gate import compare, contender_at, markdown, unopposed
from mlgitops.verdict import committed_verdict, refusal


@dataclass(frozen=True)
class Side:
    rev: str
    commit: str
    release: ReleaseRecord | None
    params: dict[str, Any]


def _section(raw: dict[str, Any], commit: str, name: str, model: type) -> Any:
    block = raw.get(name) or {}
    try:
        return model.model_validate(block)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{commit[:12]}:params.yaml: {name}.{where}: {first['msg']}") from None


def _json_at(repo: Path, commit: str, path: str) -> dict[str, Any] | None:
    text = read_blob(repo, commit, path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def judge(repo: Path, base: str, head: str) -> tuple[GateReport, Side, Side]:
    """The gate's verdict of head's release against base's, on head's test rows."""
    base_commit, head_commit = resolve_commit(repo, base), resolve_commit(repo, head)
    found_head = contender_at(repo, head_commit)
    if found_head is None:
        raise GateError(f"{head} ({head_commit[:12]}) has no release record to judge")
    challenger, head_release, head_params = found_head
    gate_config = _section(head_params, head_commit, "gate", GateConfig)
    costs = _section(head_params, head_commit, "threshold", ThresholdConfig)
    test_path = path_at(head_params, head_commit, "test")
    try:
        test = pd.read_parquet(io.BytesIO(dvc_file_at(repo, head_commit, test_path)))
    except ArtifactError:
        raise
    except Exception as error:  # a corrupt parquet file
        raise ArtifactError(f"{head_commit[:12]}:{test_path}: not readable: {error}") from None
    found_base = contender_at(repo, base_commit)
    if found_base is None:
        report = unopposed(
            f"no champion: {base} has no release (first release)",
            base,
            test,
            challenger,
            gate_config,
            costs,
        )
        base_side = Side(base, base_commit, None, {})
    else:
        champion, base_release, base_params = found_base
        report = compare(test, challenger.features, champion, challenger, gate_config, costs, base)
        base_side = Side(base, base_commit, base_release, base_params)
    return report, base_side, Side(head, head_commit, head_release, head_params)


def _rows(repo: Path, side: Side) -> str:
    report = _json_at(repo, side.commit, path_at(side.params, side.commit, "validation_report"))
    value = report.get("n_rows") if report else None
    return f"{value:,}" if isinstance(value, int) else "?"


def _metric_rows(base: ReleaseRecord | None, head: ReleaseRecord, report: GateReport) -> list[str]:
    intervals = {}
    if report.roc_auc is not None and report.expected_cost_per_1000 is not None:
        for name, diff in (
            ("roc_auc", report.roc_auc),
            ("expected_cost_per_1000", report.expected_cost_per_1000),
        ):
            intervals[name] = f"[{diff.lower:+,.4g}, {diff.upper:+,.4g}]"
    lines = [
        "| metric (release.json) | base | head | change | paired interval (gate, same rows) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, value in head.metrics.items():
        old = base.metrics.get(name) if base is not None else None
        places = 1 if name.endswith("_per_1000") else 4
        change = f"{value - old:+,.{places}f}" if old is not None else ""
        old_text = f"{old:,.{places}f}" if old is not None else "-"
        lines.append(
            f"| {name} | {old_text} | {value:,.{places}f} | {change} | {intervals.get(name, '')} |"
        )
    return lines


def _tuning(repo: Path, head: Side) -> list[str]:
    path = path_at(head.params, head.commit, "tuned_params")
    raw = _json_at(repo, head.commit, path)
    if raw is None:
        return ["No tuning at head (no tuned params file)."]
    try:
        tuned = TunedParams.model_validate(raw)
    except ValidationError:
        return [f"`{path}` at head is not a tuning record."]
    if not tuned.enabled:
        return ["Tuning off at head (`tune.enabled: false`): params.yaml's train config."]
    family = tuned.train.get("model", "?")
    chosen = tuned.train.get(family, {})
    declared = (head.params.get("train") or {}).get(family, {})
    changed = {k: v for k, v in chosen.items() if declared.get(k) != v}
    lines = [
        f"{tuned.n_trials} trials, {tuned.cv_folds} {tuned.folds} CV folds on "
        f"{tuned.n_rows_searched:,} training rows; objective {tuned.objective} "
        f"({tuned.better} is better): best trial {tuned.best_trial}, {tuned.cv_score:.5f}, "
        f"against params.yaml's own {tuned.baseline_cv_score:.5f}."
        + (" Stopped by tune.max_seconds." if tuned.stopped_by_time else ""),
        "",
        f"Chosen: `{family}` "
        + (", ".join(f"`{k}={v}`" for k, v in changed.items()) or "(params.yaml's values)"),
    ]
    return lines


def render(repo: Path, report: GateReport, base: Side, head: Side) -> str:
    assert head.release is not None
    lines = [
        f"# mlgitops: `{base.rev}` ({base.commit[:12]}) -> `{head.rev}` ({head.commit[:12]})",
        "",
        markdown(report).rstrip(),
        "",
        "## Metrics",
        "",
        *_metric_rows(base.release, head.release, report),
        "",
        "Release figures: each release's own test split at its own threshold (older releases "
        "chose it on the test split). Intervals: the paired gate above, on head's test rows.",
        "",
        "## Data",
        "",
        "| | base | head |",
        "| --- | --- | --- |",
    ]
    old = base.release
    for name, get in (
        ("data hash (md5, dvc.lock)", lambda r: r.data_hash),
        ("data until", lambda r: r.data_until or "-"),
        ("model", lambda r: r.bento_tag),
        ("model hash", lambda r: r.model_hash[:19]),
        ("threshold", lambda r: f"{r.threshold:.6f} ({r.threshold_policy})"),
    ):
        lines.append(f"| {name} | {get(old) if old else '-'} | {get(head.release)} |")
    lines.append(f"| rows | {_rows(repo, base) if old else '-'} | {_rows(repo, head)} |")
    same = old is not None and old.data_hash == head.release.data_hash
    lines += ["", "The data is unchanged." if same else "The data changed.", ""]
    lines += ["## Tuning", "", *_tuning(repo, head), ""]
    return "\n".join(lines)


def unreleased(repo: Path, base: str, head: str) -> tuple[str, GateReport] | None:
    """The report of a head whose committed gate verdict did not pass its release (None when
    it did, or head predates the gate record): that verdict, and why merging releases nothing."""
    base_commit, head_commit = resolve_commit(repo, base), resolve_commit(repo, head)
    params = params_at(repo, head_commit)
    verdict = committed_verdict(repo, head_commit, params)
    if verdict is None:
        return None
    release = find_release_at(repo, head_commit, release_path(params, head_commit))
    problem = refusal(verdict, release)
    if problem is None:
        return None
    if verdict.passed:
        raise ReleaseNotPassedError(f"{head} ({head_commit[:12]}) is not a release: {problem}")
    try:
        report = GateReport.model_validate(_json_at(repo, head_commit, verdict.path) or {})
    except ValidationError as error:
        first = str(error).strip().splitlines()[0]
        raise ArtifactError(f"{head_commit[:12]}:{verdict.path}: {first}") from None
    names = f"`{release.bento_tag}`" if release is not None else "no release"
    lines = [
        f"# mlgitops: `{base}` ({base_commit[:12]}) -> `{head}` ({head_commit[:12]})",
        "",
        f"## Not a release: head's model did not pass the gate ({verdict.verdict})",
        "",
        f"Head commits model `{verdict.model_hash[:19]}` with gate verdict **{verdict.verdict}** "
        f"(`{verdict.path}`), so its release record still names {names}: merging releases "
        f"nothing new, and `mlgitops deploy` refuses the merged commit (exit "
        f"{ReleaseNotPassedError.exit_code}). Change the model until the gate passes, or leave "
        "it out of this change.",
        "",
        markdown(report, "Champion / challenger gate, as committed at head").rstrip(),
        "",
    ]
    return "\n".join(lines), report


def pr_report(repo: Path, base: str, head: str) -> tuple[str, GateReport]:
    found = unreleased(repo, base, head)
    if found is not None:
        return found
    report, base_side, head_side = judge(repo, base, head)
    return render(repo, report, base_side, head_side), report

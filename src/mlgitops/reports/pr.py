"""`mlgitops report pr`: what a change to the model does, as Markdown for a pull request.

For any two revisions it runs the gate of stage `gate` again, the champion being the release at
`base` and the challenger the release at `head`, on `head`'s test rows (both read from Git and
the DVC cache or remote), under the BASE's gate policy (mlgitops.policy: gate.*, threshold.*,
the split that defines the test rows): a change must not set its own bar. A head that edits the
policy is judged under the base's anyway and the report and verdict say "policy changed" with
the keys; when it edits what defines the test rows, head's data is split again under the base's
split settings. The head's model is scored in a sandboxed process (mlgitops.reports.sandbox).

Exit precedence (`exit_code`): FAIL 17 and INCONCLUSIVE 18 first, whatever the policy; a PASS
whose change edits the policy 33 (a policy owner reviews it); PASS 0.

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

from mlgitops.errors import (
    ArtifactError,
    DataError,
    DataQualityError,
    GateError,
    ReleaseNotPassedError,
    validation_line,
)
from mlgitops.gate.compare import against_base
from mlgitops.gate.contender import contender_at
from mlgitops.gate.markdown import markdown
from mlgitops.git import read_blob, resolve_commit
from mlgitops.policy import GatePolicy, changed_keys, policy_of
from mlgitops.records import GateReport, PrVerdict, TunedParams
from mlgitops.release import ReleaseRecord
from mlgitops.reports.sandbox import SandboxedModel
from mlgitops.revision import (
    dvc_added_file_at,
    dvc_file_at,
    find_release_at,
    params_at,
    path_at,
    release_path,
)
from mlgitops.schema import TrainingSchema
from mlgitops.verdict import committed_verdict, refusal


@dataclass(frozen=True)
class Side:
    rev: str
    commit: str
    release: ReleaseRecord | None
    params: dict[str, Any]


def _json_at(repo: Path, commit: str, path: str) -> dict[str, Any] | None:
    text = read_blob(repo, commit, path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Policies:
    """The base's policy (the one judged under), the head's, and the keys that differ."""

    base: GatePolicy
    head: GatePolicy

    @property
    def changed(self) -> tuple[str, ...]:
        return changed_keys(self.base, self.head)


def policies(repo: Path, base_commit: str, head_commit: str) -> Policies:
    return Policies(
        policy_of(params_at(repo, base_commit), base_commit),
        policy_of(params_at(repo, head_commit), head_commit),
    )


def _read_parquet(data: bytes, where: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as error:  # a corrupt parquet file
        raise ArtifactError(f"{where}: not readable: {error}") from None


def judged_rows(repo: Path, head: Side, policy: Policies) -> tuple[pd.DataFrame, str]:
    """The rows the gate scores: head's committed test split while head keeps the base's
    definition of it, else head's data split again under the base's split settings."""
    commit = head.commit
    if not policy.base.defines_other_test_rows(policy.head):
        test_path = path_at(head.params, commit, "test")
        return _read_parquet(dvc_file_at(repo, commit, test_path), f"{commit[:12]}:{test_path}"), (
            "head"
        )
    from mlgitops.data.split import split_frame
    from mlgitops.data.table import read_table

    schema_path = path_at(head.params, commit, "schema_file")
    try:
        schema = TrainingSchema.model_validate_json(dvc_file_at(repo, commit, schema_path))
    except ValidationError as error:
        raise ArtifactError(
            f"{commit[:12]}:{schema_path}: not a schema: {validation_line(error)}"
        ) from None
    data = policy.base.data
    schema = schema.model_copy(
        update={
            "target": data["target"] or schema.target,
            "positive_class": str(data["positive_class"] or schema.positive_class),
            "time_column": data["time_column"],
        }
    )
    data_path = str((head.params.get("data") or {}).get("path") or "data/transactions.csv")
    suffix = Path(data_path).name.split(".", 1)[-1]
    import tempfile

    with tempfile.TemporaryDirectory(prefix="mlgitops-judge-") as tmp:
        local = Path(tmp) / Path(data_path).name
        local.write_bytes(dvc_added_file_at(repo, commit, data_path))
        try:
            table = read_table(local, "parquet" if suffix in {"parquet", "pq"} else "csv")
            where = f"{commit[:12]}:{data_path}"
            _, _, test = split_frame(table, schema, policy.base.split, where)
        except (DataError, DataQualityError) as error:
            raise GateError(f"head's data cannot be split under base's split: {error}") from None
    return test, "base_split"


def judge(repo: Path, base: str, head: str) -> tuple[GateReport, Side, Side, Policies, str]:
    """The gate's verdict of head's release against base's, on head's test rows, under the
    base's policy; the head's model scored in a sandbox."""
    base_commit, head_commit = resolve_commit(repo, base), resolve_commit(repo, head)
    found_head = contender_at(repo, head_commit, load=SandboxedModel)
    if found_head is None:
        raise GateError(f"{head} ({head_commit[:12]}) has no release record to judge")
    challenger, head_release, head_params = found_head
    policy = policies(repo, base_commit, head_commit)
    head_side = Side(head, head_commit, head_release, head_params)
    test, rows = judged_rows(repo, head_side, policy)
    report, champion = against_base(
        repo,
        base,
        base_commit,
        test,
        challenger.features,
        challenger,
        policy.base.gate,
        policy.base.costs,
    )
    base_release, base_params = champion if champion is not None else (None, {})
    base_side = Side(base, base_commit, base_release, base_params)
    return report, base_side, head_side, policy, rows


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


def policy_section(policy: Policies, rows: str = "head") -> list[str]:
    """The report's policy paragraph: which policy judged, and loudly, what the head changed."""
    changed = policy.changed
    judged = (
        f"Judged under the base's gate policy ({policy.base.commit[:12]}, "
        f"`{policy.base.sha256[:19]}`): gate.*, threshold.* and the split that defines the test "
        "rows are read from the base revision, never from the change."
    )
    if not changed:
        return [judged, ""]
    old, new = policy.base.flat(), policy.head.flat()
    lines = [
        f"## Policy changed: {len(changed)} key{'s' if len(changed) > 1 else ''} of the gate's "
        "policy",
        "",
        f"**policy changed**: this change edits the policy it would be judged by. {judged} A PASS "
        "does not exit 0 (`mlgitops report pr` exits with its own code): the policy owners "
        "(CODEOWNERS) review the policy change on its own.",
        "",
        "| key | base (judged under) | head (ignored) |",
        "| --- | --- | --- |",
        *(f"| {key} | `{old.get(key)}` | `{new.get(key)}` |" for key in changed),
        "",
    ]
    if rows == "base_split":
        lines += [
            "The head changes what defines the test rows: its data was split again under the "
            "base's split settings. The head's model may have trained on some of these rows, "
            "which flatters it; the verdict cannot pass without review.",
            "",
        ]
    return lines


def render(
    repo: Path,
    report: GateReport,
    base: Side,
    head: Side,
    policy: Policies | None = None,
    rows: str = "head",
) -> str:
    assert head.release is not None
    lines = [
        f"# mlgitops: `{base.rev}` ({base.commit[:12]}) -> `{head.rev}` ({head.commit[:12]})",
        "",
        *(policy_section(policy, rows) if policy is not None else []),
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


def unreleased(
    repo: Path, base: str, head: str, policy: Policies | None = None
) -> tuple[str, GateReport] | None:
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
        raise ArtifactError(
            f"{head_commit[:12]}:{verdict.path}: {validation_line(error)}"
        ) from None
    names = f"`{release.bento_tag}`" if release is not None else "no release"
    lines = [
        f"# mlgitops: `{base}` ({base_commit[:12]}) -> `{head}` ({head_commit[:12]})",
        "",
        *(policy_section(policy) if policy is not None else []),
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


def pr_report(repo: Path, base: str, head: str) -> tuple[str, PrVerdict]:
    """The Markdown report of head's release against base's and its verdict record."""
    base_commit, head_commit = resolve_commit(repo, base), resolve_commit(repo, head)
    policy = policies(repo, base_commit, head_commit)
    rows = "head"
    found = unreleased(repo, base, head, policy)
    if found is not None:
        text, report = found
    else:
        report, base_side, head_side, policy, rows = judge(repo, base, head)
        text = render(repo, report, base_side, head_side, policy, rows)
    changed = policy.changed
    verdict = PrVerdict(
        verdict=report.verdict,
        base=base,
        base_commit=base_commit,
        head=head,
        head_commit=head_commit,
        policy_sha256=policy.base.sha256,
        policy_changed=bool(changed),
        changed_keys=changed,
        test_rows=rows,  # type: ignore[arg-type]
        gate=report,
    )
    return text, verdict

"""The pull request body of a revert branch (Markdown): why, what goes, what comes back, how.

Pure rendering: the same plan, branch and evidence give the same bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from mlgitops.errors import RevertError, validation_line
from mlgitops.model_base import FrozenModel
from mlgitops.release import ReleaseRecord
from mlgitops.revert.alerts import AlertPayload, PayloadError, parse_payload
from mlgitops.revert.branch import RevertBranch
from mlgitops.revert.plan import CommitInfo, RevertPlan

# Evidence is for a reviewer to read; a larger file is cut (and says so) rather than refused.
MAX_EVIDENCE_CHARS = 64 * 1024
MAX_MONITOR_ALERTS = 10


class Evidence(FrozenModel):
    """One piece of evidence: an Alertmanager payload (rendered as a table) or any file."""

    name: str
    text: str
    alert: AlertPayload | None = None


class MonitorAlert(BaseModel):
    # The alerts of `mlgitops monitor`'s summary (monitoring.alerts.Alert), as far as shown here.
    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: str
    window: str
    subject: str
    message: str


class MonitorSummary(BaseModel):
    """What the PR shows of reports/monitor/summary.json (written by `mlgitops monitor`)."""

    model_config = ConfigDict(extra="ignore", frozen=True, protected_namespaces=())

    status: str
    model_version: str | None = None
    as_of: str | None = None
    rows: int | None = None
    error: str | None = None
    alerts_total: int = 0
    alerts_by_kind: dict[str, int] = {}
    alerts: list[MonitorAlert] = []


def evidence_from_text(name: str, text: str) -> Evidence:
    try:
        alert = parse_payload(text.encode())
    except PayloadError:
        alert = None
    return Evidence(name=name, text=text, alert=alert)


def read_evidence(path: Path) -> Evidence:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RevertError(f"--evidence {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RevertError(f"--evidence {path}: cannot read it as text: {error}") from None
    return evidence_from_text(Path(path).name, text)


def read_monitor_summary(path: Path) -> MonitorSummary:
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return MonitorSummary.model_validate(raw)
    except FileNotFoundError:
        raise RevertError(f"monitor summary {path}: file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise RevertError(f"monitor summary {path}: not readable JSON: {error}") from None
    except ValidationError as error:
        raise RevertError(f"monitor summary {path}: {validation_line(error)}") from None


def _cell(value: object) -> str:
    text = "—" if value is None or value == "" else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def _fence(text: str, language: str = "") -> list[str]:
    if len(text) > MAX_EVIDENCE_CHARS:
        text = text[:MAX_EVIDENCE_CHARS] + f"\n... (cut at {MAX_EVIDENCE_CHARS} characters)"
    # A fence longer than any run of backticks inside, so the evidence cannot close it.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{language}", text.rstrip("\n"), fence]


def _pretty(text: str) -> tuple[str, str]:
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True), "json"
    except json.JSONDecodeError:
        return text, ""


def _alert_section(evidence: Evidence) -> list[str]:
    payload = evidence.alert
    assert payload is not None
    lines = [
        f"## Alert ({_cell(evidence.name)})",
        "",
        f"Alertmanager ({_cell(payload.receiver)}), group status **{payload.status}**.",
        "",
        "| alert | status | severity | since | fingerprint | summary |",
        "|---|---|---|---|---|---|",
    ]
    for alert in payload.alerts:
        row = (
            alert.name,
            alert.status,
            alert.labels.get("severity"),
            alert.starts_at.isoformat(),
            alert.fingerprint,
            alert.annotations.get("summary"),
        )
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    text, language = _pretty(evidence.text)
    lines += ["", "<details><summary>The payload as received</summary>", ""]
    lines += [*_fence(text, language), "", "</details>", ""]
    return lines


def _monitor_section(
    summary: MonitorSummary | str | None, name: str, removed: ReleaseRecord
) -> list[str]:
    lines = [f"## Monitor summary (`{name}`)", ""]
    if summary is None:
        return [*lines, "None found: run `mlgitops monitor` on the prediction logs.", ""]
    if isinstance(summary, str):
        return [*lines, f"Not readable: {summary}", ""]
    lines.append(
        f"Status **{summary.status}** for model `{summary.model_version or '?'}`"
        f" as of {summary.as_of or '?'} ({summary.rows if summary.rows is not None else '?'} rows);"
        f" {summary.alerts_total} alerts."
    )
    if summary.model_version not in (None, removed.model_tag, removed.bento_tag):
        # A stale report, or one of another model: the reviewer must not take it as evidence.
        tag = removed.model_tag
        lines.append(f"**Note: this summary is not of the release removed (`{tag}`).**")
    if summary.error:
        lines.append(f"Error: {summary.error}")
    if summary.alerts_by_kind:
        kinds = ", ".join(f"{k} ×{v}" for k, v in sorted(summary.alerts_by_kind.items()))
        lines.append(f"By kind: {kinds}.")
    if summary.alerts:
        lines += ["", "| kind | window | subject | message |", "|---|---|---|---|"]
        for alert in summary.alerts[:MAX_MONITOR_ALERTS]:
            row = (alert.kind, alert.window, alert.subject, alert.message)
            lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
        if len(summary.alerts) > MAX_MONITOR_ALERTS:
            lines.append(f"\n({len(summary.alerts) - MAX_MONITOR_ALERTS} more in the summary.)")
    return [*lines, ""]


def _release_rows(removed: ReleaseRecord, restored: ReleaseRecord) -> list[str]:
    fields: list[tuple[str, Any, Any]] = [
        ("bento tag", removed.bento_tag, restored.bento_tag),
        ("image", removed.image, restored.image),
        ("model tag", removed.model_tag, restored.model_tag),
        ("model hash", removed.model_hash, restored.model_hash),
        ("model format", removed.model_format, restored.model_format),
        ("data hash", removed.data_hash, restored.data_hash),
        ("data until", removed.data_until, restored.data_until),
        ("params hash", removed.params_hash, restored.params_hash),
        ("threshold", f"{removed.threshold:.4f}", f"{restored.threshold:.4f}"),
        ("threshold policy", removed.threshold_policy, restored.threshold_policy),
        ("mlgitops", removed.mlgitops_version, restored.mlgitops_version),
    ]
    lines = ["| | removed (current) | restored (previous) |", "|---|---|---|"]
    for name, old, new in fields:
        lines.append(f"| {name} | `{_cell(old)}` | `{_cell(new)}` |")
    lines += ["", "| metric | removed | restored | restored − removed |", "|---|---|---|---|"]
    for metric in sorted(set(removed.metrics) | set(restored.metrics)):
        old, new = removed.metrics.get(metric), restored.metrics.get(metric)
        delta = f"{new - old:+.4f}" if old is not None and new is not None else "—"
        lines.append(f"| {_cell(metric)} | {_number(old)} | {_number(new)} | {delta} |")
    return lines


def _commit_line(info: CommitInfo, indent: str = "") -> str:
    merge = " (merge)" if info.is_merge else ""
    return (
        f"{indent}- `{info.short}` {_cell(info.subject)}{merge} — {_cell(info.author)}, {info.date}"
    )


def _taken_back_section(plan: RevertPlan) -> list[str]:
    restored = plan.restored_commit
    total = plan.taken_back_total
    lines = [
        f"## What this takes back ({total} commit{'s' if total != 1 else ''} of `{plan.base}`)",
        "",
        f"This branch's one commit has exactly the tree of `{restored.short}`, so **every change"
        f" made to `{plan.base}` since is taken back, code and docs included**, not only the"
        " release: that is what makes the rollback exact (the restored commit's `dvc.lock`,"
        " artifacts and code reproduce the restored release byte for byte) and conflict-free."
        " Re-apply what should stay in a new pull request after the merge"
        " (`git cherry-pick -x <commit>`, then `dvc repro`). First-parent history, newest first;"
        " a merge lists what it brought in:",
        "",
    ]
    for item in plan.taken_back:
        lines.append(_commit_line(item.commit))
        for merged in item.merged:
            lines.append(_commit_line(merged, "  "))
        if item.merged_total > len(item.merged):
            more = item.merged_total - len(item.merged)
            span = f"{item.commit.short}^1..{item.commit.short}"
            lines.append(f"  - ... and {more} more (`git log {span}`)")
    if total > len(plan.taken_back):
        span = f"{restored.short}..{plan.base_commit[:12]}"
        more = total - len(plan.taken_back)
        lines.append(f"- ... and {more} more (`git log --first-parent {span}`)")
    return [*lines, "", *_reproduce_lines(plan)]


def _reproduce_lines(plan: RevertPlan) -> list[str]:
    restored = plan.restored_commit
    lines = []
    if plan.passed_over:
        lines += [
            f"`{plan.restored.bento_tag}` was also current on later commits, passed over because"
            " their `dvc.lock` does not match them (`dvc repro` there re-runs stages and may"
            " build another bento than the one they pin):",
            "",
        ]
        for item in plan.passed_over:
            lines.append(f"- `{item.commit.short}` {_cell(item.commit.subject)}: {item.reason}")
        lines.append("")
    if plan.lock_mismatches:
        reasons = "; ".join(plan.lock_mismatches)
        lines += [
            f"**Warning: `dvc.lock` of `{restored.short}` does not match it** ({_cell(reasons)}):"
            " `dvc repro` on this branch re-runs stages and may build another bento than"
            f" `{plan.restored.bento_tag}`. Prefer `mlgitops revert --to <commit>` with the"
            " commit that built the release.",
            "",
        ]
    return lines


def render_pr_body(
    plan: RevertPlan,
    branch: RevertBranch,
    evidence: Sequence[Evidence] = (),
    monitor: MonitorSummary | str | None = None,
    monitor_name: str = "reports/monitor/summary.json",
    remote: str = "origin",
) -> str:
    """The Markdown body; `monitor` is the summary, a reason it is unreadable, or None."""
    removed, restored = plan.removed, plan.restored
    commit = plan.restored_commit
    title = f"Revert release {removed.bento_tag}: restore {restored.bento_tag}"
    which = (
        "the release picked with `--to`"
        if plan.chosen
        else "the last release before it with another bento tag"
    )
    lines = [
        f"# {title}",
        "",
        f"Rolls `{plan.base}` back from `{removed.bento_tag}` to `{restored.bento_tag}`, {which}:"
        f" this branch is one commit on top of `{plan.base}` whose tree is exactly the tree of"
        f" `{commit.short}` (“{_cell(commit.subject)}”), the last commit of `{plan.base}` on"
        f" which `{restored.bento_tag}` was current. The rollback is this commit: Argo CD's"
        f" auto-sync stays on and deploys `{plan.base}` once this is merged; the image"
        f" `{restored.image}` exists already, nothing is rebuilt.",
        "",
    ]
    for item in evidence:
        if item.alert is not None:
            lines += _alert_section(item)
    lines += _monitor_section(monitor, monitor_name, removed)
    lines += ["## Releases", "", *_release_rows(removed, restored), ""]
    lines += _taken_back_section(plan)
    introduced = plan.introduced
    lines += ["## Commits", ""]
    if introduced is not None:
        lines.append(
            f"- Release `{removed.bento_tag}` introduced by `{introduced.sha}`"
            f" “{_cell(introduced.subject)}” by {_cell(introduced.author)}, {introduced.date}"
        )
    lines += [
        f"- Restored commit (its tree): `{commit.sha}` “{_cell(commit.subject)}”",
        f"- Revert commit: `{branch.revert_commit}` on branch `{branch.branch}`, from"
        f" `{plan.base}` at `{plan.base_commit}`",
        f"- Checked: the branch's tree is the tree of `{commit.short}`; `{plan.release_path}`,"
        f" `{plan.k8s_release_patch}` and `{plan.lock_path}` on it are byte for byte those of"
        f" `{commit.short}`.",
        "",
    ]
    for item in evidence:
        if item.alert is None:
            text, language = _pretty(item.text)
            lines += [f"## Evidence: {_cell(item.name)}", "", *_fence(text, language), ""]
    lines += [
        "## Merge and deploy",
        "",
        "```sh",
        f"git push {remote} {branch.branch}  # no-op when pushed already",
        f"gh pr create --base {plan.base} --head {branch.branch} --title '{title}' "
        "--body-file <this file>",
        "# Optional, before merging: run the restored release in staging",
        f"mlgitops deploy --env staging --rev {branch.branch}",
        f"# After merging, Argo CD syncs {plan.base}; without Argo CD:",
        f"git fetch {remote} && mlgitops deploy --env production --rev {remote}/{plan.base}",
        "```",
        "",
    ]
    return "\n".join(lines)

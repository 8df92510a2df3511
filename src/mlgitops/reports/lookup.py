"""The report of a revision, for `mlgitops report`: the work tree's, or a commit's from Git."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from mlgitops import git
from mlgitops.config import PathsConfig, load_params
from mlgitops.errors import ArtifactError, validation_line
from mlgitops.reports.model import ModelReport, load_report
from mlgitops.revision import params_at, setting

DEFAULT_JSON = PathsConfig.model_fields["report_json"].default.as_posix()
DEFAULT_HTML = PathsConfig.model_fields["report_html"].default.as_posix()


@dataclass(frozen=True)
class FoundReport:
    report: ModelReport
    # Where the page is: a file of the work tree, or `git show COMMIT:PATH`.
    html: str
    commit: str | None
    working_tree: bool


def working_tree_report(params_file: Path) -> FoundReport:
    params = load_params(params_file)
    report = load_report(params.paths.report_json)
    return FoundReport(
        report=report,
        html=str(Path(params.paths.report_html).resolve()),
        commit=git.current_commit(),
        working_tree=True,
    )


def report_at(repo: Path, rev: str) -> FoundReport:
    """The report committed at REV (its params.yaml says where); ArtifactError without one."""
    commit = git.resolve_commit(repo, rev)
    params = params_at(repo, commit)
    json_path = setting(params, commit, "paths", "report_json") or DEFAULT_JSON
    html_path = setting(params, commit, "paths", "report_html") or DEFAULT_HTML
    text = git.read_blob(repo, commit, json_path)
    if text is None:
        raise ArtifactError(
            f"{commit[:12]} has no report {json_path} (run `dvc repro` and commit it)"
        )
    try:
        report = ModelReport.model_validate_json(text)
    except ValidationError as error:
        raise ArtifactError(f"{commit[:12]}:{json_path}: {validation_line(error)}") from None
    return FoundReport(
        report=report,
        html=f"git show {commit[:12]}:{html_path} > model_report.html",
        commit=commit,
        working_tree=False,
    )

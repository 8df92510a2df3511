"""`mlgitops retrain`: ingest fresh labelled data, `dvc repro`, and on a PASS a commit on a new
branch plus the pull-request body. It never deploys: merging deploys.

Everything happens in a temporary Git worktree of the base branch that shares the repository's
DVC cache, so the user's working tree, main and the deployed release are never touched, whatever
the verdict. `dvc repro` finishes whatever the verdict (the release stages keep the champion's
outputs on a verdict other than PASS); the loop then reads the gate's verdict on the worktree's
model. On PASS the worktree's changes (data.dvc, params.yaml, dvc.lock, the release and its k8s
pin, metrics, reports) become one commit on the new branch; on FAIL or INCONCLUSIVE nothing is
committed, no branch is left, and the error says why in one line, naming where the evidence is
kept: the challenger's gate report, gate record and metrics, copied out of the worktree before it
goes (paths.retrain_evidence/<branch>/, ignored by Git), and the full `dvc repro` log under
.git/mlgitops/retrain/. Progress comes one line per pipeline stage started and finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from mlgitops import git
from mlgitops.config import DEFAULT_PARAMS_FILE, Params, load_params
from mlgitops.data.ingest import IngestRequest, IngestSummary, ingest, tracking_dvc_file
from mlgitops.dvcrun import run_dvc, stream_dvc
from mlgitops.errors import (
    ConfigError,
    GateError,
    GateFailedError,
    GateInconclusiveError,
    MlgitopsError,
    RetrainError,
)
from mlgitops.io import file_sha256
from mlgitops.records import GateReport
from mlgitops.release import ReleaseRecord, load_release
from mlgitops.revision import dvc_cache_dir

# The gate's verdicts that refuse a release, and the error each becomes.
REFUSALS: dict[str, type[GateError]] = {
    "FAIL": GateFailedError,
    "INCONCLUSIVE": GateInconclusiveError,
}


class RetrainRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    # The labelled batch to ingest (none: retrain on the stored data with other params).
    fresh: IngestRequest = IngestRequest()
    # Params to change for the challenger: ("train.max_iter", "200"), values read as YAML.
    overrides: tuple[tuple[str, str], ...] = ()
    base: str | None = None  # default retrain.base
    branch: str | None = None  # default retrain.branch_prefix + a hash of base and inputs
    pr_body: Path | None = None  # default <git dir>/mlgitops/retrain/<branch>.md


class RetrainResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    branch: str
    commit: str
    base: str
    base_commit: str
    champion: str
    challenger: str
    verdict: str
    reason: str
    pr_body: str
    ingest: IngestSummary | None

    def line(self) -> str:
        return (
            f"gate PASS: {self.challenger} may replace {self.champion}; committed "
            f"{self.commit[:12]} on branch {self.branch} (PR body: {self.pr_body}); merge to deploy"
        )


def _absolute(paths: Sequence[str]) -> tuple[str, ...]:
    """Local paths made absolute (the worktree runs elsewhere); URLs kept as given."""
    return tuple(p if "://" in p else str(Path(p).resolve()) for p in paths)


def _inputs_digest(
    fresh: IngestRequest, overrides: Sequence[tuple[str, str]], base_commit: str
) -> str:
    import fsspec

    digest = hashlib.sha256(base_commit.encode())
    for name in (*fresh.batch, *fresh.predictions, *fresh.labels):
        digest.update(name.encode())
        if "://" not in name and Path(name).is_dir():
            files = sorted(str(p) for p in Path(name).rglob("*") if p.is_file())
        else:
            files = [name]
        for file in files:
            try:
                with fsspec.open(file, "rb") as handle:
                    while chunk := handle.read(1 << 20):
                        digest.update(chunk)
            except (OSError, ValueError) as error:
                raise RetrainError(f"{file}: cannot read: {error}") from None
    for key, value in overrides:
        digest.update(f"{key}={value}".encode())
    return digest.hexdigest()[:12]


def parse_override(text: str) -> tuple[str, str]:
    """'section.key=value' -> ('section.key', 'value')."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or "." not in key:
        raise ConfigError(f"--set {text!r}: expected SECTION.KEY=VALUE (e.g. train.max_iter=300)")
    return key.strip(), value


def apply_overrides(params_file: Path, overrides: Sequence[tuple[str, str]]) -> None:
    """Set each key in params.yaml (comments kept), then validate the result as a whole."""
    if not overrides:
        return
    from ruamel.yaml import YAML, YAMLError

    yaml = YAML()
    yaml.preserve_quotes = True
    document = yaml.load(params_file.read_text(encoding="utf-8"))
    for key, raw in overrides:
        try:
            value = YAML(typ="safe").load(raw) if raw.strip() else None
        except YAMLError:
            raise ConfigError(f"--set {key}: {raw!r} is not a YAML value") from None
        node = document
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part) if hasattr(node, "get") else None
            if not hasattr(child, "get"):
                raise ConfigError(f"--set {key}: params.yaml has no section {part!r}")
            node = child
        node[leaf] = value
    import io

    out = io.StringIO()
    yaml.dump(document, out)
    params_file.write_text(out.getvalue(), encoding="utf-8")
    try:
        load_params(params_file)  # a key that is no param, or a bad value: one line, here
    except ConfigError as error:
        # Named by what the user typed, not the temporary worktree's file.
        problem = str(error).removeprefix(f"{params_file}: ")
        sets = " ".join(f"--set {key}={raw}" for key, raw in overrides)
        raise ConfigError(f"params.yaml with {sets}: {problem}") from None


def _venv_env() -> dict[str, str]:
    """The environment for `dvc repro`: this interpreter's bin first (the stages call
    `mlgitops`), no analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DVC_NO_ANALYTICS", "1")
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    return env


def _dvc(worktree: Path, *args: str, log: Path) -> subprocess.CompletedProcess[str]:
    result = run_dvc(*args, cwd=worktree, env=_venv_env())
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ dvc {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    return result


def _prepare_worktree(repo: Path, base_commit: str, worktree: Path, log: Path) -> None:
    git.run(repo, "worktree", "add", "--detach", str(worktree), base_commit)
    cache = dvc_cache_dir(repo)
    cache.mkdir(parents=True, exist_ok=True)
    if _dvc(worktree, "cache", "dir", "--local", str(cache), log=log).returncode != 0:
        raise RetrainError(f"cannot point the worktree at the DVC cache {cache} (see {log})")
    # Every output of the base that is in the cache; what is not gets rebuilt by the repro.
    _dvc(worktree, "checkout", "--quiet", log=log)
    params = load_params(worktree / DEFAULT_PARAMS_FILE)
    tracked = tracking_dvc_file(worktree, params.data.path)
    if tracked is None:
        raise RetrainError(f"{params.data.path}: no .dvc file tracks it at the base")
    dvc_file = tracked[0].relative_to(worktree.resolve())
    if _dvc(worktree, "status", "--quiet", str(dvc_file), log=log).returncode != 0:
        from mlgitops.data.materialize import materialize

        materialize(dvc_file, params.data.path, cwd=worktree)


def _remove_worktree(repo: Path, worktree: Path) -> None:
    # Twice --force: a worktree interrupted while `git worktree add` made it is still locked.
    try:
        git.run(repo, "worktree", "remove", "--force", "--force", str(worktree))
    except MlgitopsError:
        with contextlib.suppress(MlgitopsError):
            git.run(repo, "worktree", "unlock", str(worktree))
        shutil.rmtree(worktree, ignore_errors=True)
        git.run(repo, "worktree", "prune")


def _gate_report(worktree: Path, params: Params) -> GateReport | None:
    from mlgitops.io import load_model_json

    path = worktree / params.paths.gate_metrics
    try:
        return load_model_json(GateReport, path)
    except (MlgitopsError, OSError, ValueError):
        return None


def _last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.lower().startswith(("error", "failed"))]
    return (errors or lines or ["no output"])[0 if errors else -1]


_STARTED = re.compile(r"^Running stage '(?P<stage>[^']+)':")
_UNCHANGED = re.compile(r"^Stage '(?P<stage>[^']+)' didn't change, skipping")


class StageProgress:
    """Turns `dvc repro`'s output into one progress message per stage started, finished (with
    its time) or unchanged. A stage ends where the next one starts or the run ends."""

    def __init__(
        self, progress: Callable[[str], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.progress, self.clock = progress, clock
        self.current: tuple[str, float] | None = None

    def line(self, text: str) -> None:
        if started := _STARTED.match(text):
            self.finish()
            self.current = (started["stage"], self.clock())
            self.progress(f"stage {started['stage']} started")
        elif unchanged := _UNCHANGED.match(text):
            self.finish()
            self.progress(f"stage {unchanged['stage']} unchanged")

    def finish(self, failed: bool = False) -> None:
        if self.current is not None:
            stage, began = self.current
            how = "failed after" if failed else "finished in"
            self.progress(f"stage {stage} {how} {self.clock() - began:.1f} s")
            self.current = None


def _repro(
    worktree: Path,
    log: Path,
    progress: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """`dvc repro`, which finishes whatever the gate says; a failure is a RetrainError. Its
    output goes to the log as it comes, so an interrupted run leaves what it did."""
    progress("dvc repro (validate, split, tune, train, evaluate, gate, package, ...)")
    stages = StageProgress(progress, clock)
    with log.open("a", encoding="utf-8") as handle:
        handle.write("$ dvc repro\n")

        def on_line(text: str) -> None:
            handle.write(text + "\n")
            handle.flush()
            stages.line(text)

        result = stream_dvc("repro", cwd=worktree, env=_venv_env(), on_line=on_line)
    stages.finish(failed=result.returncode != 0)
    if result.returncode != 0:
        raise RetrainError(
            f"dvc repro failed: {_last_error(result.stderr + result.stdout)} (full log: {log}); "
            "nothing committed"
        )


def keep_evidence(worktree: Path, params: Params, target: Path) -> Path:
    """Copy the challenger's gate report, gate and evaluation records and headline metrics out
    of the worktree into `target` (replacing an earlier copy), before the worktree goes."""
    files = {
        "gate.md": params.paths.gate_report,
        "gate.json": params.paths.gate_metrics,
        "evaluate.json": params.paths.metrics,
        "metrics/evaluate.json": params.paths.headline_evaluate,
        "metrics/gate.json": params.paths.headline_gate,
        "metrics/tune.json": params.paths.headline_tune,
    }
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, source in files.items():
        if (worktree / source).is_file():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(worktree / source, staging / name)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def _shown(path: Path, repo: Path) -> str:
    """`path` relative to the repository when it is inside it (how the user finds it)."""
    try:
        return str(path.relative_to(repo))
    except ValueError:
        return str(path)


def passed_verdict(report: GateReport | None, model_hash: str, gate_file: Path) -> GateReport:
    """The gate's verdict on the worktree's model (`model_hash`), if PASS; a refusing verdict
    becomes its GateError, a missing or stale record a RetrainError."""
    if report is None:
        raise RetrainError(f"dvc repro succeeded but left no readable {gate_file}")
    if report.challenger_model_hash != model_hash:
        raise RetrainError(
            f"{gate_file} judged model {report.challenger_model_hash[:19]}, not the retrained "
            f"{model_hash[:19]}; nothing committed"
        )
    if report.verdict in REFUSALS:
        raise REFUSALS[report.verdict](
            f"gate {report.verdict}: {report.reason}; nothing committed, no branch made, "
            "main and the deployed release untouched"
        )
    return report


def _commit_message(
    champion: ReleaseRecord,
    challenger: ReleaseRecord,
    report: GateReport,
    summary: IngestSummary | None,
) -> str:
    lines = [
        f"Retrain: {challenger.bento_tag} replaces {champion.bento_tag} (gate PASS)",
        "",
        f"Gate against {champion.bento_tag}, the release of the base: {report.reason}.",
    ]
    if summary is not None:
        lines += ["", summary.line()]
    return "\n".join(lines) + "\n"


def _ingest_section(summary: IngestSummary | None, overrides: Sequence[tuple[str, str]]) -> str:
    lines = ["", "## Fresh data", ""]
    if summary is None:
        lines.append("No new data: only params changed.")
    else:
        lines += [
            "| | |",
            "|---|---|",
            f"| source | {summary.source} |",
            f"| period | {summary.period or 'unknown'} |",
            f"| batch | `{summary.batch_id}` |",
            f"| rows added | {summary.rows_added:,} ({summary.positives_added:,} positive) |",
            f"| rows already stored (skipped) | {summary.rows_already_stored:,} |",
            f"| dataset | {summary.rows_before:,} -> "
            f"{summary.rows_before + summary.rows_added:,} rows |",
        ]
        if summary.unlabelled_predictions:
            lines.append(f"| predictions not labelled yet | {summary.unlabelled_predictions:,} |")
        if summary.labels_set_aside:
            lines.append(
                f"| label rows set aside (unknown, conflicting, malformed) | "
                f"{summary.labels_set_aside:,} of {summary.label_rows:,} |"
            )
        if summary.columns_not_logged:
            lines.append(
                f"| columns not in the log (missing) | {', '.join(summary.columns_not_logged)} |"
            )
    if overrides:
        lines += ["", "Params changed: " + ", ".join(f"`{k}={v}`" for k, v in overrides)]
    return "\n".join(lines) + "\n"


def retrain(
    repo: Path,
    request: RetrainRequest,
    progress: Callable[[str], None] = lambda _: None,
) -> RetrainResult:
    repo = git.repo_root(repo)
    params = load_params(repo / DEFAULT_PARAMS_FILE)
    base = request.base or params.retrain.base
    base_commit = git.resolve_commit(repo, base)
    if git.read_blob(repo, base_commit, str(params.paths.release)) is None:
        raise RetrainError(
            f"base {base!r} ({base_commit[:12]}) has no {params.paths.release}: no champion to "
            "gate a challenger against; make the first release with `dvc repro` and commit it"
        )
    fresh = request.fresh
    if not (fresh.batch or fresh.predictions or request.overrides):
        raise RetrainError(
            "nothing to retrain on: give a batch, --predictions with --labels, or --set"
        )
    fresh = fresh.model_copy(
        update={
            "batch": _absolute(fresh.batch),
            "predictions": _absolute(fresh.predictions),
            "labels": _absolute(fresh.labels),
            "dvc_add": True,
        }
    )
    branch = request.branch or params.retrain.branch_prefix + _inputs_digest(
        fresh, request.overrides, base_commit
    )
    try:
        git.run(repo, "check-ref-format", "--branch", branch)
    except MlgitopsError:
        raise RetrainError(f"--branch {branch!r} is not a valid branch name") from None
    if git.run(repo, "branch", "--list", branch).strip():
        raise RetrainError(f"branch {branch!r} exists already (this retrain was made before?)")
    git_dir = Path(git.run(repo, "rev-parse", "--absolute-git-dir").strip())
    work = git_dir / "mlgitops" / "retrain"
    work.mkdir(parents=True, exist_ok=True)
    log = work / f"{branch.replace('/', '-')}.log"
    log.write_text("", encoding="utf-8")
    pr_body = request.pr_body or work / f"{branch.replace('/', '-')}.md"
    evidence = repo / params.paths.retrain_evidence / branch.replace("/", "-")

    worktree = Path(tempfile.mkdtemp(prefix="mlgitops-retrain-"))
    worktree.rmdir()  # git worktree add makes it
    try:
        progress(f"worktree of {base} ({base_commit[:12]})")
        _prepare_worktree(repo, base_commit, worktree, log)
        apply_overrides(worktree / DEFAULT_PARAMS_FILE, request.overrides)
        wparams = load_params(worktree / DEFAULT_PARAMS_FILE)
        champion = load_release(worktree / wparams.paths.release)
        summary = None
        if fresh.batch or fresh.predictions:
            progress("ingesting the batch")
            # The worktree goes at the end: the set-aside list stays beside the retrain log.
            aside = fresh.set_aside_path or work / f"{branch.replace('/', '-')}.set_aside.csv"
            summary = ingest(wparams, fresh.model_copy(update={"set_aside_path": aside}), worktree)
            if not summary.rows_added and not request.overrides:
                raise RetrainError(f"nothing to retrain on: {summary.line()}")
        _repro(worktree, log, progress)
        model_hash = "sha256:" + file_sha256(worktree / wparams.paths.model)
        try:
            report = passed_verdict(
                _gate_report(worktree, wparams), model_hash, wparams.paths.gate_metrics
            )
        except (GateFailedError, GateInconclusiveError) as refused:
            kept = keep_evidence(worktree, wparams, evidence)
            raise type(refused)(
                f"{refused}; the challenger's gate report: {_shown(kept / 'gate.md', repo)} "
                f"(its records and metrics beside it), the dvc repro log: {_shown(log, repo)}"
            ) from None
        challenger = load_release(worktree / wparams.paths.release)
        if challenger.model_hash == champion.model_hash:
            raise RetrainError(
                f"the retrained model is the released one ({challenger.model_hash[:19]}): "
                "nothing to propose"
            )
        progress(f"committing on {branch}")
        git.run(worktree, "switch", "--quiet", "-c", branch)
        git.run(worktree, "add", "--all")
        git.run(
            worktree,
            "commit",
            "--quiet",
            "-m",
            _commit_message(champion, challenger, report, summary),
        )
        commit = git.run(worktree, "rev-parse", "HEAD").strip()
    finally:
        _remove_worktree(repo, worktree)

    from mlgitops.io import atomic_write_text
    from mlgitops.reports.pr import pr_report

    body, _ = pr_report(repo, base, branch)
    atomic_write_text(pr_body, body + _ingest_section(summary, request.overrides))
    return RetrainResult(
        branch=branch,
        commit=commit,
        base=base,
        base_commit=base_commit,
        champion=champion.bento_tag,
        challenger=challenger.bento_tag,
        verdict=report.verdict,
        reason=report.reason,
        pr_body=str(pr_body),
        ingest=summary,
    )

"""A commit's dvc.lock against its own tree (Git objects only), and the restored commit: the last
one of the release that reproduces it, past commits whose code changed without `dvc repro`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from mlgitops.cli.main import main
from mlgitops.revert.plan import plan_revert
from mlgitops.revert.reproduce import lock_mismatches
from tests.mlgitops.deploy.helpers import release_for
from tests.mlgitops.revert.helpers import A, B, ReleaseRepo
from tests.support.project import REPO_ROOT, GitRepo

PIPELINE = {
    "stages": {
        "train": {
            "cmd": "python train.py ${train.seed}",
            "deps": ["train.py", "${paths.data}"],
            "params": ["train"],
            "outs": ["model.bin"],
            "metrics": [{"metrics.json": {"cache": False}}],
        },
        "report": {
            "cmd": "python report.py",
            "deps": ["model.bin", "report.py"],
            "outs": [{"report.md": {"cache": False}}],
        },
    }
}
PARAMS = {"paths": {"data": "data.csv"}, "train": {"seed": 1, "rate": 1.0e-06}}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_pipeline(root: Path) -> None:
    """A two-stage pipeline, its params and a dvc.lock that matches them (as DVC 3 writes it;
    the float as `1e-06`, which YAML 1.1 readers take for a string)."""
    (root / "dvc.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    (root / "train.py").write_text("print('train')\n")
    (root / "report.py").write_text("print('report')\n")
    (root / "metrics.json").write_text('{"auc": 0.9}\n')
    (root / "report.md").write_text("# report\n")
    model = "0" * 32

    def entry(path: str, md5: str | None = None) -> dict:
        return {"path": path, "hash": "md5", "md5": md5 or _md5(root / path), "size": 1}

    lock = {
        "schema": "2.0",
        "stages": {
            "train": {
                "cmd": "python train.py 1",
                "deps": [entry("train.py"), entry("data.csv", "1" * 32)],
                "params": {"params.yaml": {"train": {"seed": 1, "rate": "__RATE__"}}},
                "outs": [entry("model.bin", model), entry("metrics.json")],
            },
            "report": {
                "cmd": "python report.py",
                "deps": [entry("model.bin", model), entry("report.py")],
                "outs": [entry("report.md")],
            },
        },
    }
    text = yaml.safe_dump(lock, sort_keys=False).replace("__RATE__", "1e-06")
    (root / "dvc.lock").write_text(text)


@pytest.fixture
def pipeline(tmp_path: Path) -> GitRepo:
    repo = GitRepo(tmp_path / "p")
    repo.path.mkdir()
    repo.git("init", "-q", "-b", "main")
    repo.git("config", "user.email", "t@example.com")
    repo.git("config", "user.name", "t")
    write_pipeline(repo.path)
    repo.git("add", "-A")
    repo.git("commit", "-qm", "pipeline")
    return repo


def _change(repo: GitRepo, edit) -> list[str] | None:
    edit(repo.path)
    repo.git("add", "-A")
    repo.git("commit", "-qm", "change")
    return lock_mismatches(repo.path, "HEAD")


def _yaml_edit(name: str, change):
    def edit(root: Path) -> None:
        data = yaml.safe_load((root / name).read_text())
        change(data)
        (root / name).write_text(yaml.safe_dump(data, sort_keys=False))

    return edit


def test_a_commit_made_by_dvc_repro_matches(pipeline: GitRepo) -> None:
    assert lock_mismatches(pipeline.path, "HEAD") == []


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (
            lambda root: (root / "train.py").write_text("print('trained better')\n"),
            "stage train: train.py is not the file dvc.lock records",
        ),
        (
            lambda root: (root / "metrics.json").write_text('{"auc": 0.8}\n'),
            "stage train: metrics.json is not the file dvc.lock records",
        ),
        (
            _yaml_edit("params.yaml", lambda p: p["train"].update(rate=0.5)),
            "stage train: param train changed since dvc.lock",
        ),
        (
            _yaml_edit("params.yaml", lambda p: p["train"].update(seed=2)),
            "stage train: its command changed since dvc.lock",
        ),
        (
            _yaml_edit("dvc.yaml", lambda p: p["stages"]["report"]["deps"].append("extra.py")),
            "stage report: dvc.yaml lists other dependencies than dvc.lock",
        ),
        (
            _yaml_edit("dvc.yaml", lambda p: p["stages"].update(other={"cmd": "true"})),
            "dvc.yaml has other stages than dvc.lock",
        ),
        (
            _yaml_edit("dvc.yaml", lambda p: p["stages"]["train"]["deps"].append("${nope}")),
            "dvc.yaml names ${nope}, not in params.yaml",
        ),
    ],
)
def test_what_dvc_repro_would_re_run_is_named(pipeline: GitRepo, edit, reason: str) -> None:
    assert reason in (_change(pipeline, edit) or [])


def test_another_stage_output_must_be_the_one_recorded(pipeline: GitRepo) -> None:
    def edit(root: Path) -> None:
        lock = yaml.safe_load((root / "dvc.lock").read_text())
        lock["stages"]["train"]["outs"][0]["md5"] = "2" * 32
        lock["stages"]["train"]["params"]["params.yaml"]["train"]["rate"] = 1.0e-06
        (root / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))

    assert _change(pipeline, edit) == ["stage report: model.bin is not the output dvc.lock records"]


def test_no_lock_is_nothing_to_check(pipeline: GitRepo) -> None:
    assert _change(pipeline, lambda root: (root / "dvc.lock").unlink()) is None


def _cli(repo: ReleaseRepo) -> list[str]:
    # The toy pipeline's params.yaml is no project's: the CLI reads the project's own.
    params = str(REPO_ROOT / "params.yaml")
    return ["revert", "--repo", str(repo.path), "--base", "h", "--params", params]


def _history(repo: ReleaseRepo, stale_after: bool = True) -> dict[str, str]:
    """On a branch from before any release: release A with its pipeline, a docs commit, a commit
    editing a stage's code without `dvc repro` (A still pinned), then release B."""
    repo.git("switch", "-q", "-c", "h", "main~2")
    write_pipeline(repo.path)
    repo.git("add", "-A")
    commits = {"A": repo.commit_release(A, "release A")}
    commits["docs"] = repo.commit_file("NOTES.md", "notes\n", "docs")
    if stale_after:
        commits["stale"] = repo.commit_file("train.py", "print('new')\n", "train.py, no repro")
    commits["B"] = repo.commit_release(B, "release B")
    return commits


def test_the_restored_commit_is_the_last_that_reproduces_the_release(repo: ReleaseRepo) -> None:
    commits = _history(repo)

    plan = plan_revert(repo.path, "h")

    assert plan.restored_commit.sha == commits["docs"]
    assert [p.commit.sha for p in plan.passed_over] == [commits["stale"]]
    assert plan.passed_over[0].reason == "stage train: train.py is not the file dvc.lock records"
    assert plan.lock_mismatches == ()
    assert plan.taken_back_total == 2  # the stale commit and release B


def test_when_no_commit_reproduces_the_release_the_last_is_restored_with_a_warning(
    repo: ReleaseRepo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    commits = _history(repo)
    # Release C on top of B, then a stale edit while C is pinned: no commit of B reproduces it
    # (B's own commit carries the stale train.py too).
    repo.commit_release(release_for("C"), "release C")

    code = main([*_cli(repo), "--pr-body", str(tmp_path / "pr.md")])

    err = capsys.readouterr().err
    assert code == 0, err
    plan = plan_revert(repo.path, "h", branch="another")
    assert plan.restored_commit.sha == commits["B"]
    assert plan.passed_over == ()
    assert plan.lock_mismatches == ("stage train: train.py is not the file dvc.lock records",)
    assert err.splitlines()[1] == (
        f"warning: dvc.lock of {commits['B'][:12]} does not match it (stage train: train.py is"
        f" not the file dvc.lock records): dvc repro on revert/{release_for('C').bento_version}"
        " re-runs stages"
    )


def test_the_pr_body_names_the_commits_passed_over(
    repo: ReleaseRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    commits = _history(repo)

    assert main(_cli(repo)) == 0

    out, err = capsys.readouterr()
    assert "1 later commit passed over, their dvc.lock stale" in err
    assert f"- `{commits['stale'][:12]}` train.py, no repro: stage train: train.py is not" in out
    assert "Warning" not in out

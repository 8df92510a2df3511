"""`mlgitops revert`: a branch holding one commit whose tree is the last good release's commit,
whatever came after it, main and the work tree untouched, the PR body; and every refusal a
one-line error that changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlgitops.cli.main import main
from tests.mlgitops.deploy.helpers import release_for
from tests.mlgitops.revert.helpers import A, B, ReleaseRepo, payload

BRANCH = f"revert/{B.bento_version}"


def revert(repo: ReleaseRepo, capsys: pytest.CaptureFixture[str], *args: str) -> tuple:
    capsys.readouterr()
    code = main(["revert", "--repo", str(repo.path), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_branch_restores_the_previous_release_and_main_is_untouched(
    repo: ReleaseRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo.path / "scratch.txt").write_text("the user's uncommitted work\n")
    before = repo.state()
    release_a = repo.git("rev-parse", "main~1")

    code, out, err = revert(repo, capsys)

    assert code == 0, err
    after = repo.state()
    assert after["branches"] != before["branches"]
    assert {k: v for k, v in after.items() if k != "branches"} == {
        k: v for k, v in before.items() if k != "branches"
    }
    assert (repo.path / "scratch.txt").read_text() == "the user's uncommitted work\n"
    # One new ref: the branch, one commit on top of main whose tree is release A's commit's.
    assert repo.git("for-each-ref", "--format=%(refname)", "refs/heads/") == (
        f"refs/heads/main\nrefs/heads/{BRANCH}"
    )
    assert repo.git("rev-list", "--parents", "-n1", BRANCH).split()[1:] == [before["main"]]
    assert repo.tree(BRANCH) == repo.tree(release_a)
    message = repo.git("log", "-1", "--format=%B", BRANCH)
    assert message.startswith(f"Restore release {A.bento_tag} (the tree of {release_a[:12]})")
    assert f"{before['main'][:12]} release B" in message
    assert json.loads(repo.blob(BRANCH, "release.json"))["bento_version"] == A.bento_version
    # The PR body went to stdout, the summary to stderr.
    assert out.startswith(f"# Revert release {B.bento_tag}: restore {A.bento_tag}")
    assert err == (
        f"created branch {BRANCH}: restores {A.bento_tag} (the tree of {release_a[:12]}) in "
        f"place of {B.bento_tag}, taking back 1 commit of main; main untouched\n"
    )


def test_pr_body_names_the_alert_the_summary_both_releases_and_the_commands(
    repo: ReleaseRepo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps(payload(fingerprint="abc123def456")))
    summary = repo.path / "reports/monitor/summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(
        json.dumps(
            {
                "status": "alert",
                "model_version": B.model_tag,
                "rows": 5000,
                "alerts_total": 1,
                "alerts_by_kind": {"fpr_degraded": 1},
                "alerts": [
                    {
                        "kind": "fpr_degraded",
                        "window": "2026-11-30",
                        "subject": "fpr",
                        "message": "realized FPR 0.21 above the released 0.107",
                    }
                ],
            }
        )
    )
    body_file = tmp_path / "pr.md"

    code, out, err = revert(repo, capsys, "--evidence", str(alert), "--pr-body", str(body_file))

    assert code == 0, err
    assert out == ""
    body = body_file.read_text()
    release_b = repo.git("rev-parse", "main")
    for text in (
        "## Alert (alert.json)",
        "| RealizedFprHighFast | firing | critical |",
        "abc123def456",
        "## Monitor summary (`reports/monitor/summary.json`)",
        "Status **alert**",
        "realized FPR 0.21 above the released 0.107",
        f"| bento tag | `{B.bento_tag}` | `{A.bento_tag}` |",
        f"| model hash | `{B.model_hash}` | `{A.model_hash}` |",
        "| roc_auc | 0.9000 | 0.9000 | +0.0000 |",
        f"Release `{B.bento_tag}` introduced by `{release_b}` “release B”",
        f"Restored commit (its tree): `{repo.git('rev-parse', 'main~1')}` “release A”",
        f"Revert commit: `{repo.git('rev-parse', BRANCH)}` on branch `{BRANCH}`",
        f"git push origin {BRANCH}",
        f"gh pr create --base main --head {BRANCH}",
        f"mlgitops deploy --env staging --rev {BRANCH}",
    ):
        assert text in body, text
    assert "is not of the release removed" not in body


def test_a_summary_of_another_model_is_flagged(
    repo: ReleaseRepo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    summary = tmp_path / "old-summary.json"
    summary.write_text(json.dumps({"status": "ok", "model_version": A.model_tag}))

    code, out, err = revert(repo, capsys, "--monitor-summary", str(summary))

    assert code == 0, err
    assert f"## Monitor summary (`{summary}`)" in out
    assert f"this summary is not of the release removed (`{B.model_tag}`)" in out


def test_an_unreadable_default_summary_is_shown_not_fatal(
    repo: ReleaseRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = repo.path / "reports/monitor/summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text("{half a file")

    code, out, err = revert(repo, capsys)

    assert code == 0, err
    assert "Not readable: monitor summary" in out


def test_push_sends_only_the_new_branch_and_never_forces(
    repo: ReleaseRepo, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    repo.git("init", "-q", "--bare", str(remote))
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "origin", "main")
    remote_main = repo.git("ls-remote", "origin", "refs/heads/main")

    code, _, err = revert(repo, capsys, "--push", "origin")

    assert code == 0, err
    assert "pushed to origin" in err
    heads = repo.git("ls-remote", "--heads", "origin").splitlines()
    assert sorted(line.split("\t")[1] for line in heads) == [
        "refs/heads/main",
        f"refs/heads/{BRANCH}",
    ]
    assert repo.git("ls-remote", "origin", "refs/heads/main") == remote_main
    assert repo.git("ls-remote", "origin", f"refs/heads/{BRANCH}").split()[0] == repo.git(
        "rev-parse", BRANCH
    )


def _refused(repo: ReleaseRepo, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    before = repo.state()
    code, out, err = revert(repo, capsys, *args)
    assert code == 25, (code, err)
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("error: "), err
    assert repo.state() == before
    return err


def test_branch_exists(repo: ReleaseRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.git("branch", BRANCH, "main~1")
    err = _refused(repo, capsys)
    assert f"branch {BRANCH} already exists" in err


def test_second_run_refuses_and_keeps_the_first_branch(
    repo: ReleaseRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert revert(repo, capsys)[0] == 0
    err = _refused(repo, capsys)
    assert "already exists" in err


def test_no_earlier_release(repo: ReleaseRepo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.git("branch", "only-a", "main~1")
    err = _refused(repo, capsys, "--base", "only-a")
    assert "there is no earlier release to restore" in err


def test_unknown_base(repo: ReleaseRepo, capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(repo, capsys, "--base", "mian")
    assert "base branch 'mian' is not a commit" in err


def _messy_history(repo: ReleaseRepo) -> list[str]:
    """After release B: everything that made `git revert` of B conflict or restore something
    else, as main's history has it. Returns main's first-parent commits since A, newest first."""
    release_a = repo.git("rev-parse", "main~1")
    repo.commit_file("dvc.lock", "stages: {report: {md5: 1}}\n", "dvc.lock re-hashed")
    # The same release, its record rewritten right where B changed it (a `git revert` of B
    # conflicted), then far from B's lines (it merged cleanly and restored something else).
    repo.commit_release(B.model_copy(update={"image": B.image + "-fixed"}), "re-pin B")
    repo.commit_release(
        B.model_copy(update={"mlgitops_version": "0.1.1"}), "record only", patch=False
    )
    repo.commit_file("docs/new.md", "added after the release\n", "docs: a new page")
    repo.commit_file("dvc.lock", "stages: {report: {md5: 2}}\n", "gate re-judged")
    repo.git("switch", "-q", "-c", "feature")
    repo.commit_file("src/feature.py", "x = 1\n", "feature: first")
    repo.remove_file(".dvcignore", "feature: .dvcignore gone")
    repo.git("switch", "-q", "main")
    repo.git("merge", "-q", "--no-ff", "-m", "Merge branch 'feature'", "feature")
    repo.git("branch", "-q", "-D", "feature")
    return repo.git("rev-list", "--first-parent", f"{release_a}..main").split()


def test_whatever_came_after_the_release_is_taken_back(
    repo: ReleaseRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    release_a = repo.git("rev-parse", "main~1")
    since = _messy_history(repo)
    before = repo.state()

    code, out, err = revert(repo, capsys)

    assert code == 0, err
    assert repo.tree(BRANCH) == repo.tree(release_a)
    for path in ("release.json", "k8s/base/release.yaml", ".dvcignore"):
        assert repo.blob(BRANCH, path) == repo.blob(release_a, path)
    listed = repo.git("ls-tree", "-r", "--name-only", BRANCH).splitlines()
    for added_later in ("dvc.lock", "docs/new.md", "src/feature.py"):
        assert added_later not in listed
    assert repo.git("rev-parse", f"{BRANCH}^") == before["main"]
    assert f"taking back {len(since)} commits of main" in err
    assert repo.state()["main"] == before["main"]
    # Every first-parent commit since A is listed, the merge with what it brought in.
    assert f"## What this takes back ({len(since)} commits of `main`)" in out
    assert "code and docs included" in out
    for sha in since:
        assert f"- `{sha[:12]}` " in out
    merge = repo.git("rev-parse", "main")
    assert f"- `{merge[:12]}` Merge branch 'feature' (merge)" in out
    for sha in repo.git("rev-list", "main^1..main^2").split():
        assert f"  - `{sha[:12]}` feature: " in out
    assert "`release.json`, `k8s/base/release.yaml` and `dvc.lock` on it are byte for byte" in out


def _three_releases(repo: ReleaseRepo) -> dict[str, str]:
    """main: A, B, then a docs commit and C; a side branch with D. The commits by name."""
    commits = {"A": repo.git("rev-parse", "main~1"), "B": repo.git("rev-parse", "main")}
    commits["docs"] = repo.commit_file("NOTES.md", "after B\n", "docs after B")
    commits["C"] = repo.commit_release(release_for("C"), "release C")
    repo.git("branch", "side", commits["A"])
    repo.git("switch", "-q", "side")
    commits["D"] = repo.commit_release(release_for("D"), "release D")
    repo.git("switch", "-q", "main")
    return commits


def test_to_restores_any_earlier_release_of_main(
    repo: ReleaseRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    commits = _three_releases(repo)
    c = release_for("C")
    repo.git("tag", "v1.4", commits["A"])

    code, out, err = revert(repo, capsys, "--to", "v1.4")

    assert code == 0, err
    branch = f"revert/{c.bento_version}"
    assert repo.tree(branch) == repo.tree(commits["A"])
    assert (
        f"restores {A.bento_tag} (the tree of {commits['A'][:12]}) in place of {c.bento_tag}" in err
    )
    assert "taking back 3 commits of main" in err
    assert out.startswith(f"# Revert release {c.bento_tag}: restore {A.bento_tag}")
    assert "the release picked with `--to`" in out
    # Without --to: the last good release, B, from the commit before C (the docs commit).
    repo.git("branch", "-D", branch)
    code, out, err = revert(repo, capsys)
    assert code == 0, err
    assert repo.tree(branch) == repo.tree(commits["docs"])
    assert "the last release before it with another bento tag" in out


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("main", "pins fraud-detector:"),
        ("C", ", the release main pins now: nothing to restore"),
        ("main~4", "has no release record release.json: nothing to restore"),
        ("side", "is not in the history of main"),
        ("nope", "--to 'nope' is not a commit"),
    ],
)
def test_to_refuses_what_is_no_other_release_of_main(
    repo: ReleaseRepo, capsys: pytest.CaptureFixture[str], to: str, message: str
) -> None:
    commits = _three_releases(repo)
    err = _refused(repo, capsys, "--to", commits.get(to, to))
    assert message in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--evidence", "/nonexistent/alert.json"],
            "--evidence /nonexistent/alert.json: file not found",
        ),
        (
            ["--monitor-summary", "/nonexistent/s.json"],
            "monitor summary /nonexistent/s.json: file not found",
        ),
        (["--push", "upstream"], "--push: no remote named 'upstream'"),
        (["--branch", "has space"], "'has space' is not a valid Git branch name"),
    ],
)
def test_bad_input(
    repo: ReleaseRepo, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert message in _refused(repo, capsys, *args)

"""Connecting to the API server: kubeconfig problems are one-line errors, no stray files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

from mlgitops.cli.main import main
from tests.mlgitops.deploy.helpers import GitOpsRepo

pytestmark = pytest.mark.timeout(60)

COMMANDS = {
    "deploy": ["deploy", "--env", "staging", "--allow-unverified"],
    "history": ["history", "--env", "staging"],
    "rollback": ["rollback", "--env", "staging", "--allow-unverified"],
}
BROKEN = {
    "not YAML": (b"apiVersion: v1\nclusters: [unclosed\n", "is not valid YAML"),
    "a scalar": (b"just a string\n", "the YAML is a string, not a mapping"),
    "a list": (b"- a\n- b\n", "the YAML is a list, not a mapping"),
    "binary": (bytes(range(128, 256)) * 4, "is not a text file"),
    "a mapping of the wrong shape": (b"contexts: 5\n", "cannot load the kubeconfig"),
}


@pytest.fixture
def committed(gitops_repo: GitOpsRepo) -> GitOpsRepo:
    gitops_repo.commit_model("A")
    return gitops_repo


def mlgitops(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The exit code and the one error line (progress lines also go to stderr)."""
    capsys.readouterr()
    code = main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    return code, errors[0]


@pytest.mark.parametrize("broken", BROKEN, ids=str)
@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_a_broken_kubeconfig_is_a_one_line_error(
    command: str,
    broken: str,
    committed: GitOpsRepo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    content, says = BROKEN[broken]
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(content)

    code, err = mlgitops(
        capsys, *COMMANDS[command], "--repo", str(committed.path), "--kubeconfig", str(kubeconfig)
    )

    assert code == 9, err
    assert str(kubeconfig) in err
    assert says in err


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_a_missing_kubeconfig_names_the_path(
    command: str, committed: GitOpsRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "kubeconfig"
    code, err = mlgitops(
        capsys, *COMMANDS[command], "--repo", str(committed.path), "--kubeconfig", str(missing)
    )
    assert code == 9
    assert err == f"error: kubeconfig {missing} does not exist"


def test_without_any_kubeconfig_the_default_path_is_named(
    committed: GitOpsRepo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code, err = mlgitops(
        capsys, "deploy", "--env", "staging", "--allow-unverified", "--repo", str(committed.path)
    )
    assert code == 9
    assert f"tried {tmp_path / '.kube' / 'config'}" in err


def test_kubeconfig_lists_are_searched_and_all_named(
    committed: GitOpsRepo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    monkeypatch.setenv("KUBECONFIG", f"{first}{os.pathsep}{second}")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    code, err = mlgitops(capsys, "history", "--env", "staging", "--repo", str(committed.path))
    assert code == 9
    assert f"tried {first}, {second}, from $KUBECONFIG" in err

    second.write_text("[1, 2]\n")
    code, err = mlgitops(capsys, "history", "--env", "staging", "--repo", str(committed.path))
    assert code == 9
    assert f"kubeconfig {second} is not a kubeconfig" in err


@pytest.mark.k8s
def test_a_deploy_leaves_no_file_in_the_temp_dir(
    cli: Any, gitops_repo: GitOpsRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A private temp dir (for this process and the kubectl it starts), so other users of the
    # machine cannot disturb the check.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    assert tempfile.gettempdir() == str(tmp)
    gitops_repo.commit_model("A")

    assert cli("deploy", "--env", "staging").code == 0
    assert cli("history", "--env", "staging").code == 0

    assert sorted(tmp.iterdir()) == []

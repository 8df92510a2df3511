"""Fixtures: a GitOps repository, the fake API server with the environments bootstrapped, and
the real `mlgitops` CLI pointed at both."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.mlgitops.deploy.helpers import GitOpsRepo, bootstrap_environments, make_repo
from tests.support.fake_kube import FakeKubeServer


@pytest.fixture
def gitops_repo(tmp_path: Path) -> GitOpsRepo:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def cluster(fake_kube: FakeKubeServer) -> FakeKubeServer:
    """The fake API server with the environments bootstrapped (what a cluster admin does once)."""
    return bootstrap_environments(fake_kube)


UNSIGNED_COMMANDS = ("deploy", "rollback")


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(
    cluster: FakeKubeServer, gitops_repo: GitOpsRepo, capsys: pytest.CaptureFixture[str]
) -> Any:
    """Run `mlgitops ARGS --repo <repo> --kubeconfig <fake>` through the real entry point."""
    from mlgitops.cli.main import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        # These releases are unsigned fixtures (tests/mlgitops/attest signs real ones): deploy
        # and rollback take them as `--allow-unverified`, which they record.
        unsigned = ["--allow-unverified"] if args and args[0] in UNSIGNED_COMMANDS else []
        code = main(
            [
                *args,
                *unsigned,
                "--repo",
                str(gitops_repo.path),
                "--kubeconfig",
                str(cluster.kubeconfig_path),
            ]
        )
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run

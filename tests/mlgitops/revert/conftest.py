from __future__ import annotations

from pathlib import Path

import pytest

from tests.mlgitops.revert.helpers import ReleaseRepo, build_template, copy_repo


@pytest.fixture(scope="session")
def release_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("revert-template") / "repo")


@pytest.fixture
def repo(release_template: Path, tmp_path: Path) -> ReleaseRepo:
    """A fresh copy of the template: main has release A, then release B."""
    return copy_repo(release_template, tmp_path / "repo")

from __future__ import annotations

from pathlib import Path

import pytest

from mlgitops.config import Params
from tests.support.project import params_in, write_small_dataset


@pytest.fixture
def params(tmp_path: Path) -> Params:
    """Params whose every path is under tmp_path, with a small dataset already written."""
    config = params_in(tmp_path)
    write_small_dataset(config.data.path)
    return config


@pytest.fixture(autouse=True)
def _isolated_bentoml_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    # Tests never touch the user's ~/bentoml store.
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path_factory.mktemp("bentoml")))
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "True")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")

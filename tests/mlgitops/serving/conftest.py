"""Fixtures: a temporary BentoML home, and a small dev model saved and built into a bento."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlgitops.serving.devmodel import DevArtifacts, make_dev_artifacts

BENTO_NAME = "fraud-detector"
VERSION = "0123456789ab"


@dataclass(frozen=True)
class Packaged:
    home: Path
    artifacts: DevArtifacts
    model_tag: str
    bento_tag: str


@pytest.fixture(scope="session")
def dev_artifacts(tmp_path_factory: pytest.TempPathFactory) -> DevArtifacts:
    return make_dev_artifacts(tmp_path_factory.mktemp("dev-artifacts"))


@pytest.fixture(scope="session")
def bentoml_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private BENTOML_HOME for the session (BentoML reads it once, at first import)."""
    home = tmp_path_factory.mktemp("bentoml-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("BENTOML_HOME", str(home))
    mp.setenv("BENTOML_DO_NOT_TRACK", "true")
    _point_stores_at(home)
    yield home
    mp.undo()


def _point_stores_at(home: Path) -> None:
    """BentoML resolves its home once per process; override the resolved stores too, in case
    another test imported and used bentoml before this fixture ran."""
    from bentoml._internal.bento import BentoStore
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    dirs = {name: home / name for name in ("bentos", "models", "envs", "tmp")}
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    BentoMLContainer.bentoml_home.set(str(home))
    BentoMLContainer.bento_store_dir.set(str(dirs["bentos"]))
    BentoMLContainer.model_store_dir.set(str(dirs["models"]))
    BentoMLContainer.env_store_dir.set(str(dirs["envs"]))
    BentoMLContainer.tmp_bento_store_dir.set(str(dirs["tmp"]))
    BentoMLContainer.bento_store.set(BentoStore(str(dirs["bentos"])))
    BentoMLContainer.model_store.set(ModelStore(str(dirs["models"])))


@pytest.fixture(scope="session")
def packaged(bentoml_home: Path, dev_artifacts: DevArtifacts) -> Packaged:
    from mlgitops.serving.bento import build_bento, save_model

    model_tag = save_model(
        name=BENTO_NAME,
        version=VERSION,
        model_file=dev_artifacts.model_file,
        profile_file=dev_artifacts.profile_file,
        schema_file=dev_artifacts.schema_file,
        metadata=json.loads(json.dumps(dev_artifacts.metadata)),
    )
    bento_tag = build_bento(
        bento_name=BENTO_NAME,
        version=VERSION,
        model_tag=model_tag,
        release={"model_hash": dev_artifacts.metadata["model_hash"], "git_commit": "deadbeef"},
    )
    return Packaged(bentoml_home, dev_artifacts, model_tag, bento_tag)

"""save_model / build_bento / export_bento against a temporary BentoML home."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from mlgitops.errors import PackagingError
from mlgitops.packaging import bento as packaging
from tests.mlgitops.serving.conftest import BENTO_NAME, VERSION, Packaged


def test_save_model_stores_files_and_metadata(packaged: Packaged) -> None:
    import bentoml

    assert packaged.model_tag == f"{BENTO_NAME}:{VERSION}"
    model = bentoml.models.get(packaged.model_tag)
    for name in (packaging.MODEL_FILE, packaging.PROFILE_FILE, packaging.SCHEMA_FILE):
        assert Path(model.path_of(name)).is_file()
    assert model.info.metadata["model_hash"] == packaged.artifacts.metadata["model_hash"]
    assert str(model.path).startswith(str(packaged.home))


def test_save_model_is_idempotent(packaged: Packaged, tmp_path: Path) -> None:
    # Same tag, missing files: the existing entry is kept and nothing is read.
    tag = packaging.save_model(
        name=BENTO_NAME,
        version=VERSION,
        model_file=tmp_path / "absent.joblib",
        profile_file=tmp_path / "absent.json",
        schema_file=tmp_path / "absent.json",
        metadata={},
    )
    assert tag == packaged.model_tag


def test_save_model_missing_file_is_packaging_error(packaged: Packaged, tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="not found"):
        packaging.save_model(
            name=BENTO_NAME,
            version="fffffffffff0",
            model_file=tmp_path / "absent.joblib",
            profile_file=packaged.artifacts.profile_file,
            schema_file=packaged.artifacts.schema_file,
            metadata={},
        )


def test_build_bento_pins_model_and_is_idempotent(packaged: Packaged) -> None:
    import bentoml

    assert packaged.bento_tag == f"{BENTO_NAME}:{VERSION}"
    built = bentoml.bentos.get(packaged.bento_tag)
    assert [str(m.tag) for m in built.info.models] == [packaged.model_tag]
    pin = Path(built.path) / "src" / "mlgitops" / "serving" / packaging.PINNED_FILE
    pinned = json.loads(pin.read_text())
    assert pinned["model_tag"] == packaged.model_tag
    assert pinned["bento_tag"] == packaged.bento_tag
    assert pinned["release"] == packaged.release.model_dump(mode="json")
    requirements = (Path(built.path) / "env" / "python" / "requirements.txt").read_text()
    assert "scikit-learn==" in requirements
    assert "bentoml==" in requirements
    again = packaging.build_bento(
        bento_name=BENTO_NAME, version=VERSION, model_tag=packaged.model_tag, release={}
    )
    assert again == packaged.bento_tag


def test_build_bento_unknown_model_is_packaging_error(packaged: Packaged) -> None:
    with pytest.raises(PackagingError, match="not in the model store"):
        packaging.build_bento(
            bento_name=BENTO_NAME, version="aaaaaaaaaaaa", model_tag="nope:1", release={}
        )


def test_export_bento_writes_tar_atomically(packaged: Packaged, tmp_path: Path) -> None:
    archive = tmp_path / "out" / "bento.tar"
    packaging.export_bento(packaged.bento_tag, archive)
    with tarfile.open(archive) as tar:
        names = {m.name.lstrip("./") for m in tar.getmembers()}
    assert "bento.yaml" in names
    assert "src/mlgitops/serving/service.py" in names
    assert "src/mlgitops/serving/pinned.json" in names
    assert [p.name for p in archive.parent.iterdir()] == ["bento.tar"]


def test_export_unknown_bento_leaves_nothing(packaged: Packaged, tmp_path: Path) -> None:
    with pytest.raises(PackagingError):
        packaging.export_bento("nope:1", tmp_path / "bento.tar")
    assert list(tmp_path.iterdir()) == []

"""save_model / build_bento / export_bento against a temporary BentoML home."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from mlgitops.errors import ConfigError, PackagingError
from mlgitops.packaging import bento as packaging
from mlgitops.serving import layout
from tests.mlgitops.serving.conftest import BENTO_NAME, VERSION, Packaged
from tests.support.project import REPO_ROOT


def test_save_model_stores_files_and_metadata(packaged: Packaged) -> None:
    import bentoml

    assert packaged.model_tag == f"{BENTO_NAME}:{VERSION}"
    model = bentoml.models.get(packaged.model_tag)
    for name in (layout.MODEL_FILE, layout.PROFILE_FILE, layout.SCHEMA_FILE):
        assert Path(model.path_of(name)).is_file()
    assert model.info.metadata["model_hash"] == packaged.artifacts.metadata["model_hash"]
    assert str(model.path).startswith(str(packaged.home))


def _save_again(packaged: Packaged, tmp_path: Path, metadata: dict) -> str:
    # Same tag, missing files: the existing entry is kept and no file is read.
    return packaging.save_model(
        name=BENTO_NAME,
        version=VERSION,
        model_file=tmp_path / "absent.joblib",
        profile_file=tmp_path / "absent.json",
        schema_file=tmp_path / "absent.json",
        model_card_file=tmp_path / "absent.json",
        metadata=metadata,
    )


def test_save_model_is_idempotent(packaged: Packaged, tmp_path: Path) -> None:
    record = packaged.release.model_dump(mode="json")
    assert _save_again(packaged, tmp_path, record) == packaged.model_tag


def test_an_existing_model_tag_with_another_record_is_refused(
    packaged: Packaged, tmp_path: Path
) -> None:
    """One tag, one truth: the store's entry of the tag must carry the record being packaged
    (the issue's case: same model, another params hash)."""
    record = packaged.release.model_dump(mode="json")
    other = {**record, "params_hash": "sha256:" + "4a36" * 16}
    with pytest.raises(PackagingError) as raised:
        _save_again(packaged, tmp_path, other)
    message = str(raised.value)
    assert (
        f"model {packaged.model_tag} exists in the BentoML store with another metadata" in message
    )
    assert "params_hash: " in message
    assert "4a364a36" in message
    with pytest.raises(PackagingError, match=r"metrics\.roc_auc: "):
        _save_again(
            packaged, tmp_path, {**record, "metrics": {**record["metrics"], "roc_auc": 0.5}}
        )


def test_save_model_missing_file_is_packaging_error(packaged: Packaged, tmp_path: Path) -> None:
    with pytest.raises(PackagingError, match="not found"):
        packaging.save_model(
            name=BENTO_NAME,
            version="fffffffffff0",
            model_file=tmp_path / "absent.joblib",
            profile_file=packaged.artifacts.profile_file,
            schema_file=packaged.artifacts.schema_file,
            model_card_file=packaged.artifacts.model_card_file,
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
        bento_name=BENTO_NAME,
        version=VERSION,
        model_tag=packaged.model_tag,
        release=packaged.release.model_dump(mode="json"),
        requirements=[],
    )
    assert again == packaged.bento_tag
    # The same tag with another record in its pin is refused, naming the field.
    other = packaged.release.model_copy(update={"data_until": "2030-01-01T00:00:00+00:00"})
    with pytest.raises(PackagingError, match=r"another pin \(release record\) \(release\.data_"):
        packaging.build_bento(
            bento_name=BENTO_NAME,
            version=VERSION,
            model_tag=packaged.model_tag,
            release=other.model_dump(mode="json"),
            requirements=[],
        )
    assert packaging.stored_pin(built)["release"] == packaged.release.model_dump(mode="json")


def test_build_bento_unknown_model_is_packaging_error(packaged: Packaged) -> None:
    with pytest.raises(PackagingError, match="not in the model store"):
        packaging.build_bento(
            bento_name=BENTO_NAME,
            version="aaaaaaaaaaaa",
            model_tag="nope:1",
            release={},
            requirements=[],
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


def test_export_is_byte_identical_and_free_of_clock_and_machine(
    packaged: Packaged, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    packaging.export_bento(packaged.bento_tag, first)
    # What BentoML stamps in the store (build time, Python patch release) must not leak: rewrite
    # the store's copy as another machine at another time would have written it.
    import bentoml

    store = Path(bentoml.bentos.get(packaged.bento_tag).path)
    bento_yaml = store / "bento.yaml"
    original = bento_yaml.read_text()
    bento_yaml.write_text(
        original.replace("creation_time: '", "creation_time: '2031-05-05T10:00:00+00:00'  #")
    )
    try:
        packaging.export_bento(packaged.bento_tag, second)
    finally:
        bento_yaml.write_text(original)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        members = tar.getmembers()
        assert {m.mtime for m in members} == {0}
        assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
        assert [m.name for m in members] == sorted(m.name for m in members)
        assert {m.mode for m in members} <= {0o755, 0o644}
        text = tar.extractfile("./bento.yaml").read().decode()
    assert "creation_time: '1970-01-01T00:00:00+00:00'" in text


def test_source_date_epoch_sets_the_archive_time(
    packaged: Packaged, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    archive = tmp_path / "bento.tar"
    packaging.export_bento(packaged.bento_tag, archive)
    with tarfile.open(archive) as tar:
        assert {m.mtime for m in tar.getmembers()} == {1700000000}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(ConfigError, match="SOURCE_DATE_EPOCH='yesterday'"):
        packaging.export_bento(packaged.bento_tag, archive)


def test_requirements_come_from_the_lock(tmp_path: Path) -> None:
    lock = REPO_ROOT / "requirements.lock"
    pins = packaging.read_lock(lock)
    lines = packaging.pinned_requirements(lock)
    names = [line.partition("==")[0] for line in lines]
    assert names == sorted(names)
    for line in lines:
        name, _, version = line.partition("==")
        assert pins[name] == version
    assert not any(line.startswith("bentoml==") for line in lines)
    assert "scikit-learn==" + pins["scikit-learn"] in lines
    # A lock that disagrees with the installed libraries is refused, naming the package.
    numpy = pins["numpy"]
    skewed = tmp_path / "requirements.lock"
    skewed.write_text(lock.read_text().replace(f"numpy=={numpy} ", "numpy==0.0.1 "))
    with pytest.raises(PackagingError, match=r"pins numpy==0\.0\.1 but .* is installed"):
        packaging.pinned_requirements(skewed)
    broken = tmp_path / "broken.lock"
    broken.write_text("numpy>=2\n")
    with pytest.raises(PackagingError, match=r"broken\.lock:1: not a pinned requirement"):
        packaging.read_lock(broken)


def test_bento_ships_exactly_what_the_service_imports() -> None:
    shipped = {dest for dest, _ in packaging.shipped_source_files()}
    assert "mlgitops/serving/service.py" in shipped
    assert "mlgitops/profile.py" in shipped  # imported by the request validator
    # Build, pipeline and operator code never ship: their edits leave the bento version alone.
    assert not any(dest.startswith(("mlgitops/packaging/", "mlgitops/stages/")) for dest in shipped)
    assert not any(dest.startswith(("mlgitops/cli/", "mlgitops/deploy/")) for dest in shipped)


def test_the_archive_carries_the_model(packaged: Packaged, tmp_path: Path) -> None:
    # The store keeps models apart from bentos; the archive must hold both (the image has no
    # model store to fall back on).
    archive = tmp_path / "bento.tar"
    packaging.export_bento(packaged.bento_tag, archive)
    name, _, version = packaged.model_tag.partition(":")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    for file in ("model.joblib", "model.yaml", "model_card.json", "reference_profile.json"):
        assert f"./models/{name}/{version}/{file}" in names

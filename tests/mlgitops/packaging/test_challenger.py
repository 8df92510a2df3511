"""The challenger read from its Git revision (Git objects and the DVC cache, as the gate reads
the champion) and built into ONE bento beside the champion."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlgitops.config import ExperimentConfig
from mlgitops.errors import ArtifactError, GitError, PackagingError
from mlgitops.packaging import bento as packaging
from mlgitops.packaging.challenger import (
    pin_section,
    read_challenger,
    save_challenger,
)
from mlgitops.release import ReleaseExperiment, ReleaseRecord
from mlgitops.revision import DEFAULT_PATHS
from mlgitops.serving.layout import PINNED_FILE
from mlgitops.serving.runtime import Pinned
from tests.mlgitops.serving.conftest import BENTO_NAME, Packaged, dev_release
from tests.support.devmodel import DevArtifacts, make_dev_artifacts
from tests.support.project import REPO_ROOT

VERSION = "c0ffee000002"
EXPERIMENT = ExperimentConfig(enabled=True, challenger="challenger-v2", share=0.2, mode="ab")


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def _dvc_cached(root: Path, data: bytes) -> str:
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(data)
    return md5


@pytest.fixture(scope="module")
def challenger_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReleaseRecord]:
    """A repository whose tag `challenger-v2` released a model the way `dvc repro` commits one:
    release.json, model card and score reference in Git; model, profile and schema in DVC."""
    artifacts: DevArtifacts = make_dev_artifacts(
        tmp_path_factory.mktemp("artifacts"), rows=3000, max_iter=20
    )
    root = tmp_path_factory.mktemp("repo")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "t@example.com")
    _git(root, "config", "user.name", "t")
    _git(root, "config", "commit.gpgsign", "false")
    release = dev_release(artifacts, version=VERSION)
    outs = []
    for key, source in (
        ("model", artifacts.model_file),
        ("profile", artifacts.profile_file),
        ("schema_file", artifacts.schema_file),
    ):
        md5 = _dvc_cached(root, source.read_bytes())
        outs.append({"path": DEFAULT_PATHS[key], "md5": md5})
    git_files = {
        "release.json": release.model_dump_json(exclude_none=True),
        DEFAULT_PATHS["model_card"]: artifacts.model_card_file.read_text(),
        DEFAULT_PATHS["score_reference"]: artifacts.score_reference_file.read_text(),  # type: ignore[union-attr]
        "dvc.lock": yaml.safe_dump({"schema": "2.0", "stages": {"all": {"outs": outs}}}),
        "params.yaml": "paths: {release: release.json}\n",
        ".gitignore": "/.dvc/cache\n",
    }
    for name, text in git_files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "challenger release")
    _git(root, "tag", "challenger-v2")
    return root, release


def test_the_challenger_is_read_from_its_revision_not_the_work_tree(challenger_repo) -> None:
    root, release = challenger_repo
    (root / "release.json").write_text("{}")  # the work tree does not matter
    found = read_challenger(EXPERIMENT, root)
    assert found.release == release
    assert found.commit == _git(root, "rev-parse", "challenger-v2")
    model = hashlib.sha256(found.files["model"]).hexdigest()
    assert f"sha256:{model}" == release.model_hash
    _git(root, "checkout", "-q", "release.json")


def test_a_missing_revision_is_a_one_line_git_error(challenger_repo) -> None:
    root, _ = challenger_repo
    missing = EXPERIMENT.model_copy(update={"challenger": "no-such-tag"})
    with pytest.raises(GitError, match="revision 'no-such-tag' is not a commit"):
        read_challenger(missing, root)


def test_a_model_file_that_is_not_the_released_one_is_refused(challenger_repo, tmp_path) -> None:
    root, release = challenger_repo
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    shutil.copytree(root / ".dvc", clone / ".dvc")
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    other = b"not the model"
    lock["stages"]["all"]["outs"][0]["md5"] = _dvc_cached(clone, other)
    (clone / "dvc.lock").write_text(yaml.safe_dump(lock))
    _git(clone, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", "x")
    _git(clone, "tag", "-f", "challenger-v2")
    with pytest.raises(ArtifactError, match=f"not the {release.model_hash} its release names"):
        read_challenger(EXPERIMENT, clone)


def test_one_bento_carries_both_models_and_the_pin_names_the_challenger(
    packaged: Packaged, challenger_repo
) -> None:
    import bentoml

    root, release = challenger_repo
    challenger = read_challenger(EXPERIMENT, root)
    challenger_tag = save_challenger(challenger)
    assert challenger_tag == release.model_tag
    recorded = ReleaseExperiment(
        mode="ab",
        share=0.2,
        salt="s",
        assignment_key="transaction_id",
        challenger_revision="challenger-v2",
        challenger_commit=challenger.commit,
        challenger_bento_tag=release.bento_tag,
        challenger_model_tag=release.model_tag,
        challenger_model_hash=release.model_hash,
    )
    champion = packaged.release.model_copy(update={"experiment": recorded})
    tag = packaging.build_bento(
        bento_name=BENTO_NAME,
        version="e0e0e0e0e0e0",
        model_tag=packaged.model_tag,
        release=champion.model_dump(mode="json", exclude_none=True),
        requirements=packaging.pinned_requirements(REPO_ROOT / "requirements.lock"),
        experiment=pin_section(recorded, challenger),
    )
    bento = bentoml.bentos.get(tag)
    assert {str(m.tag) for m in bento.info.models} == {packaged.model_tag, release.model_tag}
    pin_file = Path(bento.path) / "src" / "mlgitops" / "serving" / PINNED_FILE
    pinned = Pinned.parse(json.loads(pin_file.read_text()))
    assert pinned.experiment is not None
    assert pinned.experiment.challenger_model_tag == release.model_tag
    assert pinned.experiment.challenger_release == release
    assert pinned.experiment.share == 0.2
    assert pinned.release.experiment == recorded


def test_a_bento_refuses_a_challenger_missing_from_the_store(packaged: Packaged) -> None:
    pin = {"challenger_model_tag": f"{BENTO_NAME}:ffffffffffff"}
    with pytest.raises(PackagingError, match=f"model {BENTO_NAME}:ffffffffffff is not in"):
        packaging.build_bento(
            bento_name=BENTO_NAME,
            version="e1e1e1e1e1e1",
            model_tag=packaged.model_tag,
            release=packaged.release.model_dump(mode="json"),
            requirements=[],
            experiment=pin,
        )

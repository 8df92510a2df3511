"""The release at a commit: one strict reader for deploy and image build."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from mlgitops.config import PathsConfig
from mlgitops.errors import ArtifactError, ConfigError
from mlgitops.git import resolve_commit
from mlgitops.revision import (
    DEFAULT_PATHS,
    find_release_at,
    params_at,
    path_at,
    release_at,
    setting,
)
from tests.mlgitops.deploy.helpers import release_for

pytestmark = pytest.mark.timeout(60)


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir()
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "t@example.com")
        self.git("config", "user.name", "t")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        proc = subprocess.run(
            ["git", "-C", str(self.root), *args], capture_output=True, text=True, check=True
        )
        return proc.stdout.strip()

    def commit(self, files: dict[str, str]) -> str:
        for name, text in files.items():
            path = self.root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "files")
        return resolve_commit(self.root, "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


RELEASE = release_for("A")


def test_the_committed_release_is_read_not_the_work_tree(repo: Repo) -> None:
    commit = repo.commit({"params.yaml": "paths: {release: release.json}\n",
                          "release.json": RELEASE.model_dump_json()})  # fmt: skip
    (repo.root / "release.json").write_text("not json")
    assert release_at(repo.root, commit) == RELEASE


def test_params_of_an_older_schema_still_locate_the_release(repo: Repo) -> None:
    # Keys today's schema lacks or forbids do not matter: only paths.release is read.
    params = {"paths": {"release": "out/release.json"}, "retired_section": {"x": 1}}
    commit = repo.commit({"params.yaml": yaml.safe_dump(params),
                          "out/release.json": RELEASE.model_dump_json()})  # fmt: skip
    assert release_at(repo.root, commit) == RELEASE
    assert setting(params_at(repo.root, commit), commit, "paths", "bento_archive") is None


def test_without_params_the_release_is_release_json(repo: Repo) -> None:
    commit = repo.commit({"release.json": RELEASE.model_dump_json()})
    assert release_at(repo.root, commit) == RELEASE


def test_an_invalid_release_record_is_an_artifact_error_naming_commit_and_field(
    repo: Repo,
) -> None:
    record = json.loads(RELEASE.model_dump_json())
    del record["image"]
    commit = repo.commit({"release.json": json.dumps(record)})
    with pytest.raises(ArtifactError) as error:
        release_at(repo.root, commit)
    assert str(error.value) == (
        f"{commit[:12]}:release.json: not a valid release record: image: Field required"
    )


def test_a_release_record_with_unknown_fields_is_refused(repo: Repo) -> None:
    record = {**json.loads(RELEASE.model_dump_json()), "surprise": 1}
    commit = repo.commit({"release.json": json.dumps(record)})
    with pytest.raises(ArtifactError, match="surprise"):
        release_at(repo.root, commit)


def test_a_missing_release_record(repo: Repo) -> None:
    commit = repo.commit({"params.yaml": "paths: {release: release.json}\n"})
    assert find_release_at(repo.root, commit, "release.json") is None
    with pytest.raises(ArtifactError, match=f"{commit[:12]} has no release record release.json"):
        release_at(repo.root, commit)


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ("paths: [unclosed\n", "not valid YAML"),
        ("- a list\n", "expected a mapping at the top level"),
        ("paths: 3\n", "paths: expected a mapping"),
        ("paths: {release: 7}\n", "paths.release: expected a non-empty string"),
    ],
)
def test_unusable_params_are_a_config_error_naming_the_commit(
    repo: Repo, params: str, says: str
) -> None:
    commit = repo.commit({"params.yaml": params, "release.json": RELEASE.model_dump_json()})
    with pytest.raises(ConfigError) as error:
        release_at(repo.root, commit)
    assert str(error.value).startswith(f"{commit[:12]}:params.yaml: ")
    assert says in str(error.value)


def test_unnamed_paths_fall_back_to_paths_config_defaults_except_the_moved_records() -> None:
    defaults = {
        name: field.default.as_posix()
        for name, field in PathsConfig.model_fields.items()
        if isinstance(field.default, Path)
    }
    differ = {key for key, value in defaults.items() if DEFAULT_PATHS[key] != value}
    # The gate record moved to reports/ after revisions that did not name it wrote metrics/.
    assert differ == {"gate_metrics"}
    assert DEFAULT_PATHS["gate_metrics"] == "metrics/gate.json"
    assert path_at({}, "0" * 40, "tuned_params") == defaults["tuned_params"]
    assert path_at({}, "0" * 40, "score_reference") == defaults["score_reference"]
    named = {"paths": {"tuned_params": "elsewhere/tuned.json"}}
    assert path_at(named, "0" * 40, "tuned_params") == "elsewhere/tuned.json"
    # Keys params.yaml must name have a fallback too (a commit without params.yaml).
    assert path_at({}, "0" * 40, "model") == "artifacts/model/model.joblib"
    assert path_at({}, "0" * 40, "metrics") == "metrics/evaluate.json"

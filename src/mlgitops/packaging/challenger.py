"""The challenger of an experiment, read from its Git revision for the one bento that serves it
beside the champion.

As the gate reads the champion: the release record and params from Git objects, the model file
by dvc.lock's md5 from the DVC cache or remote (checked against the release's model hash), the
files tracked in Git (model card, score reference) from Git. Nothing of the working tree is used,
so what is served is exactly what that revision released.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgitops.config import ExperimentConfig, Params, experiment_key_error
from mlgitops.errors import ArtifactError, ConfigError, PackagingError
from mlgitops.git import read_blob, repo_root, resolve_commit
from mlgitops.release import ReleaseExperiment, ReleaseRecord
from mlgitops.revision import dvc_file_at, params_at, path_at, release_at
from mlgitops.serving.layout import SCORE_REFERENCE_FILE

# The files of its model store entry (keys of params.yaml `paths:`).
CHALLENGER_FILES = ("model", "model_card", "profile", "schema_file", "score_reference")


@dataclass(frozen=True)
class Challenger:
    revision: str
    commit: str
    release: ReleaseRecord
    # {paths key: bytes} of the files its model store entry is made of.
    files: dict[str, bytes]


def _file_at(repo: Path, commit: str, path: str) -> bytes:
    """A file of `commit`: from Git when it is tracked there, else DVC's copy by dvc.lock."""
    text = read_blob(repo, commit, path)
    if text is not None:
        return text.encode("utf-8")
    return dvc_file_at(repo, commit, path)


def read_challenger(experiment: ExperimentConfig, repo: Path | None = None) -> Challenger:
    """The challenger's release and files at `experiment.challenger`; one-line errors for a
    missing revision, a revision without a release, or a release format it cannot serve."""
    revision = experiment.challenger
    if revision is None:
        raise ConfigError("experiment.challenger: a Git revision is required")
    repo = repo_root(Path.cwd()) if repo is None else repo
    commit = resolve_commit(repo, revision)
    raw = params_at(repo, commit)
    release = release_at(repo, commit, raw)
    if release.model_format != "pipeline":
        raise PackagingError(
            f"experiment.challenger {revision}: its release serves model_format "
            f"{release.model_format}; only pipeline challengers can be served beside the champion"
        )
    files = {}
    for key in CHALLENGER_FILES:
        files[key] = _file_at(repo, commit, path_at(raw, commit, key))
    digest = "sha256:" + hashlib.sha256(files["model"]).hexdigest()
    if digest != release.model_hash:
        raise ArtifactError(
            f"{commit[:12]}: the model file is {digest}, not the {release.model_hash} its "
            "release names (commit dvc.lock and release.json together)"
        )
    return Challenger(revision, commit, release, files)


def release_experiment(
    params: Params, experiment: ExperimentConfig, challenger: Challenger, champion_hash: str
) -> ReleaseExperiment:
    """The experiment as the release records it; checks the key against this tree's schema."""
    from mlgitops.schema import load_schema

    if challenger.release.model_hash == champion_hash:
        raise PackagingError(
            f"experiment.challenger {challenger.revision}: releases the champion's own model "
            f"({champion_hash}); nothing to compare"
        )
    schema = load_schema(params.paths.schema_file)
    key = params.experiment_key or ""
    error = experiment_key_error(key, [*schema.feature_names, *schema.passthrough_columns])
    if error is not None:
        raise ConfigError(error)
    return ReleaseExperiment(
        mode=experiment.mode,
        share=experiment.share,
        salt=experiment.salt,
        assignment_key=key,
        challenger_revision=challenger.revision,
        challenger_commit=challenger.commit,
        challenger_bento_tag=challenger.release.bento_tag,
        challenger_model_tag=challenger.release.model_tag,
        challenger_model_hash=challenger.release.model_hash,
    )


def pin_section(recorded: ReleaseExperiment, challenger: Challenger) -> dict[str, Any]:
    """The bento pin's `experiment` section (read by serving.experiment.ExperimentPin)."""
    return {
        "mode": recorded.mode,
        "share": recorded.share,
        "salt": recorded.salt,
        "assignment_key": recorded.assignment_key,
        "challenger_revision": recorded.challenger_revision,
        "challenger_bento_tag": recorded.challenger_bento_tag,
        "challenger_model_tag": recorded.challenger_model_tag,
        "challenger_release": challenger.release.model_dump(mode="json", exclude_none=True),
    }


def experiment_digest(recorded: ReleaseExperiment, challenger_release: ReleaseRecord) -> str:
    """sha256 of the experiment as served, with the challenger's release record the pin
    carries (`pin_section`): part of the bento version when one is on."""
    content = {
        "experiment": recorded.model_dump(mode="json"),
        "challenger_release": challenger_release.model_dump(mode="json", exclude_none=True),
    }
    canonical = json.dumps(content, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def save_challenger(challenger: Challenger) -> str:
    """The challenger's model store entry (its own release's tag); kept if it exists."""
    from mlgitops.packaging.bento import save_model

    release = challenger.release
    with tempfile.TemporaryDirectory(prefix="mlgitops-challenger-") as tmp:
        paths = {}
        for key, data in challenger.files.items():
            paths[key] = Path(tmp) / key
            paths[key].write_bytes(data)
        return save_model(
            name=release.bento_name,
            version=release.bento_version,
            model_file=paths["model"],
            profile_file=paths["profile"],
            schema_file=paths["schema_file"],
            model_card_file=paths["model_card"],
            metadata=release.model_dump(mode="json", exclude_none=True),
            extra_files={SCORE_REFERENCE_FILE: paths["score_reference"]},
        )

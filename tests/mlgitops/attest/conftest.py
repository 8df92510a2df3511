"""A GitOps repository whose releases carry what an attestation binds: the model, profile and
schema as DVC outputs (in dvc.lock and the local DVC cache), the model card, data.dvc, a gate
record that passed the model, the project's requirements.lock; keys made per test."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from mlgitops.attest.attest import Attested, attest
from mlgitops.attest.keys import add_key, generate_key_pem
from mlgitops.release import ReleaseRecord, write_release
from tests.mlgitops.deploy.helpers import (
    DEPLOYMENT,
    IMAGE_REPOSITORY,
    GitOpsRepo,
    bootstrap_environments,
    make_repo,
)
from tests.support.fake_kube import FakeKubeServer

PROJECT = Path(__file__).resolve().parents[3]
MODEL = "artifacts/model/model.joblib"
DVC_OUTS = {
    "train": MODEL,
    "split": "artifacts/reference_profile.json",
    "validate": "artifacts/schema.json",
}


def image_digest(model: str) -> str:
    return "sha256:" + hashlib.sha256(f"image of {model}".encode()).hexdigest()


@dataclass
class Key:
    id: str
    private: Path
    public: Path


@dataclass
class ReleaseRepo(GitOpsRepo):
    trust_root: Path = field(default=Path())

    def cache_file(self, path: str, commit: str = "HEAD") -> Path:
        """The DVC cache file of output `path` as dvc.lock at `commit` records it."""
        from mlgitops.revision import dvc_out_md5

        md5 = dvc_out_md5(self.path, self.git("rev-parse", commit), path)
        assert md5 is not None
        return self.path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]

    def _dvc_out(self, path: str, data: bytes) -> str:
        md5 = hashlib.md5(data).hexdigest()
        cached = self.path / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
        (self.path / path).parent.mkdir(parents=True, exist_ok=True)
        (self.path / path).write_bytes(data)
        return md5

    def commit_release(self, model: str, repository: str = IMAGE_REPOSITORY) -> ReleaseRecord:
        """Commit model `model`'s release as `dvc repro` would: outputs, records, gate PASS."""
        contents = {
            MODEL: f"fitted pipeline {model}".encode(),
            DVC_OUTS["split"]: json.dumps({"profile": model}).encode(),
            DVC_OUTS["validate"]: json.dumps({"schema": "v1"}).encode(),
        }
        lock = {"schema": "2.0", "stages": {}}
        for stage, path in DVC_OUTS.items():
            md5 = self._dvc_out(path, contents[path])
            lock["stages"][stage] = {
                "cmd": f"mlgitops stage {stage}",
                "outs": [{"path": path, "md5": md5, "size": len(contents[path])}],
            }
        (self.path / "dvc.lock").write_text(yaml.safe_dump(lock), encoding="utf-8")
        model_hash = "sha256:" + hashlib.sha256(contents[MODEL]).hexdigest()
        card = self.path / "artifacts/model/model_card.json"
        card.write_text(json.dumps({"model_hash": model_hash}) + "\n", encoding="utf-8")
        data_md5 = hashlib.md5(f"data {model}".encode()).hexdigest()
        (self.path / "data.dvc").write_text(
            yaml.safe_dump({"outs": [{"md5": f"{data_md5}x.dir", "path": "data"}]}),
            encoding="utf-8",
        )
        gate = {"verdict": "PASS", "reason": "non-inferior", "challenger_model_hash": model_hash}
        (self.path / "reports").mkdir(exist_ok=True)
        (self.path / "reports/gate.json").write_text(json.dumps(gate) + "\n", encoding="utf-8")
        version = model_hash[7:19]
        record = ReleaseRecord(
            bento_name=DEPLOYMENT,
            bento_version=version,
            model_tag=f"{DEPLOYMENT}:{version}",
            model_hash=model_hash,
            data_hash=f"md5:{data_md5}",
            params_hash="sha256:" + hashlib.sha256(f"params {model}".encode()).hexdigest(),
            image=f"{repository}:{version}",
            threshold=0.3,
            threshold_policy="min_expected_cost",
            metrics={"roc_auc": 0.9},
            mlgitops_version="0.1.0",
        )
        write_release(record, self.path / "release.json", self.path / "k8s/base/release.yaml")
        self.git(
            "add",
            "dvc.lock",
            "data.dvc",
            "reports/gate.json",
            "release.json",
            "k8s/base/release.yaml",
            "artifacts/model/model_card.json",
        )
        self.git("commit", "-q", "-m", f"release model {model}")
        return record

    def sign(self, key: Key, model: str, now: datetime | None = None) -> Attested:
        """`mlgitops attest` as the release job runs it, then commit the attestation."""
        done = attest(
            self.path,
            key_file=key.private,
            trust_root=self.trust_root,
            image_digest=image_digest(model),
            now=now,
        )
        self.git("add", "attestations")
        self.git("commit", "-q", "-m", f"attest {done.bento_tag}")
        return done


def make_release_repo(path: Path) -> ReleaseRepo:
    base = make_repo(path)
    repo = ReleaseRepo(base.path, trust_root=base.path / "trust" / "keys.yaml")
    shutil.copy(PROJECT / "requirements.lock", repo.path / "requirements.lock")
    (repo.path / "artifacts/model").mkdir(parents=True, exist_ok=True)
    (repo.path / ".gitignore").write_text(
        "/.dvc/cache\n/artifacts/*.json\n/artifacts/model/model.joblib\n"
    )
    repo.git("add", "requirements.lock", ".gitignore")
    repo.git("commit", "-q", "-m", "lock")
    return repo


@pytest.fixture
def cluster(fake_kube: FakeKubeServer) -> FakeKubeServer:
    return bootstrap_environments(fake_kube)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(release_repo: ReleaseRepo, capsys: pytest.CaptureFixture[str]):
    """`mlgitops ARGS --repo <repo>` through the real entry point (add --kubeconfig yourself)."""
    from mlgitops.cli.main import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main([*args, "--repo", str(release_repo.path)])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture
def release_repo(tmp_path: Path) -> ReleaseRepo:
    return make_release_repo(tmp_path / "repo")


@pytest.fixture
def make_key(tmp_path: Path, release_repo: ReleaseRepo):
    """A new P-256 key pair, its public half added to the repo's trust root."""

    def make(key_id: str, not_before: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> Key:
        private, public = generate_key_pem()
        key = Key(key_id, tmp_path / f"{key_id}.pem", tmp_path / f"{key_id}.pub")
        key.private.write_bytes(private)
        key.public.write_bytes(public)
        release_repo.trust_root.parent.mkdir(parents=True, exist_ok=True)
        add_key(release_repo.trust_root, key_id, public, not_before)
        release_repo.git("add", "trust/keys.yaml")
        release_repo.git("commit", "-q", "-m", f"trust key {key_id}")
        return key

    return make

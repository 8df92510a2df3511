"""Rollback restores a release, whatever came after it. Release A, then release B, then one of:
a code commit that re-runs a stage, the gate re-judged after HEAD moved, a merged feature
branch, a same-model rebuild. `mlgitops revert`, its webhook receiver and the README's hand
procedure each make one commit whose tree is A's; on it `dvc repro` changes nothing, release
record, k8s pin, dvc.lock, alert rules and bento archive are A's, and a deploy runs A's image by
digest: A's and B's images are in a registry on 127.0.0.1 (Debian's docker-registry), which the
project's image repository names, and every deploy is `--require-digest`.

One history per module: A and B are built once, each case branches from B."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mlgitops.cli.main import main
from mlgitops.release import ReleaseRecord
from tests.mlgitops.deploy.conftest import cluster  # noqa: F401 (the bootstrapped fake cluster)
from tests.mlgitops.deploy.helpers import (
    deployed_image,
    history_entries,
    running_digests,
    running_images,
)
from tests.mlgitops.revert.helpers import payload, serving
from tests.support.fake_kube import FakeKubeServer
from tests.support.project import REPO_ROOT, make_project, run
from tests.support.registry import LocalRegistry, PushedImage, local_registry, push_test_image

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

# What a rollback must bring back byte for byte (Git-tracked); the bento archive is DVC's.
PINNED = (
    "release.json",
    "k8s/base/release.yaml",
    "dvc.lock",
    "k8s/monitoring/rules.yaml",
    "k8s/monitoring/prometheusrule.yaml",
    "artifacts/monitoring/score_reference.json",
    "reports/gate.json",
)
CASES = ("code", "gate", "merge", "rebuild")
IMAGE_REPOSITORY = "mlgitops/fraud-detector"  # in the test registry


@dataclass(frozen=True)
class Release:
    commit: str
    record: ReleaseRecord
    files: dict[str, bytes]
    archive_sha256: str


@dataclass(frozen=True)
class Project:
    root: Path
    env: dict[str, str]
    archive: Path  # the bento archive (a DVC output)

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(list(cmd), self.root, check=check, env=self.env)

    def git(self, *args: str) -> str:
        return self.run("git", *args).stdout.strip()

    def tree(self, rev: str) -> str:
        return self.git("rev-parse", f"{rev}^{{tree}}")

    def commit_all(self, message: str) -> str:
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        return self.git("rev-parse", "HEAD")

    def switch(self, *args: str) -> None:
        self.git("switch", "-q", *args)
        self.run("dvc", "checkout", "-q")

    def snapshot(self) -> Release:
        return Release(
            commit=self.git("rev-parse", "HEAD"),
            record=ReleaseRecord.model_validate_json((self.root / "release.json").read_text()),
            files={name: (self.root / name).read_bytes() for name in PINNED},
            archive_sha256=hashlib.sha256(self.archive.read_bytes()).hexdigest(),
        )


@dataclass(frozen=True)
class History(Project):
    a: Release
    b: Release


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry | None]:
    """The registry the project's images go to; None without docker-registry (then every test
    here deploys, so each is skipped; CI installs it)."""
    if shutil.which("docker-registry") is None:
        yield None
        return
    with local_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


def _image_repository(registry: LocalRegistry | None) -> str:
    host = registry.host if registry is not None else "registry.example.com"
    return f"{host}/{IMAGE_REPOSITORY}"


def _push(registry: LocalRegistry, release: Release, content: str) -> PushedImage:
    """Push a small image as `release`'s image (`content` decides its bytes and digest)."""
    tag = release.record.bento_version
    pushed = push_test_image(registry, IMAGE_REPOSITORY, tag, content)
    assert pushed.reference == release.record.image
    return pushed


@dataclass(frozen=True)
class Images:
    registry: LocalRegistry
    a: PushedImage
    b: PushedImage


@pytest.fixture(scope="module")
def images(history: History, registry: LocalRegistry | None) -> Images:
    """A's and B's images, pushed once for the module (as CI pushes each release's image)."""
    if registry is None:
        pytest.skip("needs docker-registry (apt-get install -y docker-registry)")
    a, b = _push(registry, history.a, "release A"), _push(registry, history.b, "release B")
    assert a.digest != b.digest
    return Images(registry, a, b)


def _nodes_pull_from(cluster: FakeKubeServer, *pushed: PushedImage) -> None:  # noqa: F811
    """The fake cluster's nodes see the registry's tags and nothing else."""
    cluster.registry.implicit = False
    for image in pushed:
        cluster.registry.push(image.reference, image.digest, image.config)


def _touch_code(root: Path, module: str, note: str) -> None:
    """A comment added to a stage's module: DVC re-runs the stage, its outputs are the same."""
    path = root / "src" / "mlgitops" / "stages" / f"{module}.py"
    path.write_text(path.read_text() + f"# {note}\n")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, registry: LocalRegistry | None) -> History:
    base = tmp_path_factory.mktemp("rollback")
    root = make_project(base / "repo", rows=2000)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["package"]["image_repository"] = _image_repository(registry)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    archive = root / params["paths"]["bento_archive"]
    h = Project(root, {"BENTOML_HOME": str(base / "bentoml")}, archive)
    h.run("dvc", "repro")
    h.commit_all("release A")
    a = h.snapshot()
    h.run("dvc", "push", "-q")
    # A cheaper false alarm moves the threshold: new reference, rules, bento; the same model.
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["threshold"]["false_positive_cost"] = 1.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    h.run("dvc", "repro")
    h.commit_all("release B: cheaper reviews")
    b = h.snapshot()
    assert a.record.bento_tag != b.record.bento_tag
    h.git("branch", "release-b")

    # A code commit that re-runs a stage: dvc.lock re-hashes.
    h.switch("-c", "case-code", "release-b")
    _touch_code(root, "report", "wording")
    assert "Running stage 'report'" in h.run("dvc", "repro").stdout
    h.commit_all("report: wording")
    assert (root / "dvc.lock").read_bytes() != b.files["dvc.lock"]

    # HEAD moved, then the gate re-judged, as the README says: its champion is now B.
    h.switch("-c", "case-gate", "release-b")
    (root / "NOTES.md").write_text("notes after release B\n")
    h.commit_all("notes")
    h.run("dvc", "repro", "-f", "-s", "gate")
    h.commit_all("gate re-judged after HEAD moved")
    gate = json.loads((root / "reports/gate.json").read_text())
    assert gate["champion_bento_tag"] == b.record.bento_tag

    # A feature branch merged with a real merge commit, main having moved meanwhile.
    h.switch("-c", "case-merge", "release-b")
    h.switch("-c", "feature")
    _touch_code(root, "evaluate", "feature work")
    h.run("dvc", "repro")
    h.commit_all("feature: evaluate")
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "feature.md").write_text("a page added by the feature\n")
    h.commit_all("feature: docs")
    h.switch("case-merge")
    (root / "CHANGELOG.md").write_text("meanwhile on main\n")
    h.commit_all("changelog")
    h.git("merge", "-q", "--no-ff", "-m", "Merge branch 'feature'", "feature")
    h.run("dvc", "checkout", "-q")

    # A same-model rebuild: package runs again and gives the same bento tag.
    h.switch("-c", "case-rebuild", "release-b")
    _touch_code(root, "package", "rebuild")
    assert "Running stage 'package'" in h.run("dvc", "repro").stdout
    assert json.loads((root / "release.json").read_text())["bento_version"] == (
        b.record.bento_version
    )
    h.commit_all("release B rebuilt (same model, same bento)")
    return History(root, h.env, archive, a, b)


def _checked_out_as_a(h: History, branch: str, tmp_path: Path) -> None:
    """`branch` reproduces release A: in place after `dvc repro` (the work tree held the case's
    outputs), and in a fresh clone after `dvc pull` and `dvc repro` (what CI runs on a PR)."""
    h.switch(branch)
    h.run("dvc", "repro")
    assert h.git("status", "--porcelain", "--untracked-files=all") == ""
    for name, content in h.a.files.items():
        assert (h.root / name).read_bytes() == content, name
    assert hashlib.sha256(h.archive.read_bytes()).hexdigest() == h.a.archive_sha256
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "--branch", branch, str(h.root), str(clone)], tmp_path)
    # The DVC remote, as CI configures it (a test project keeps it in .dvc/config.local).
    shutil.copy(h.root / ".dvc" / "config.local", clone / ".dvc" / "config.local")
    run(["dvc", "pull", "-q"], clone, env=h.env)
    run(["dvc", "repro"], clone, env=h.env)
    assert run(["git", "status", "--porcelain"], clone).stdout == ""


def _deploy(
    h: History,
    kube: FakeKubeServer,
    rev: str,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """Deploy `rev` to staging pinned to a digest (the test registry speaks plain HTTP); what it
    wrote to stderr."""
    args = ["deploy", "--env", "staging", "--rev", rev, "--timeout", "30", "--repo", str(h.root)]
    args += ["--require-digest", "--no-registry-tls-verify"]
    # The pipeline's releases are not signed here (tests/mlgitops/attest signs and verifies).
    args += ["--allow-unverified"]
    capsys.readouterr()
    code = main([*args, "--kubeconfig", str(kube.kubeconfig_path)])
    err = capsys.readouterr().err
    assert code == 0, err
    return err


def _ran(cluster: FakeKubeServer, image: PushedImage, source: str) -> None:  # noqa: F811
    """The Deployment applied `image` by digest, its pods report that digest, and the history's
    last entry records tag and digest (and where the digest came from)."""
    pinned = f"{image.reference}@{image.digest}"
    assert deployed_image(cluster) == pinned
    assert running_images(cluster) == {pinned}
    assert running_digests(cluster) == {image.digest}
    last = history_entries(cluster)[-1]
    assert (last["outcome"], f"{last['image']}@{last['image_digest']}") == ("succeeded", pinned)
    assert last["digest_source"] == source


def _hand_procedure() -> str:
    """The README's rollback by hand (docs/revert.md shows the same commands)."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.DOTALL)
    [block] = [b for b in blocks if "git restore --source" in b]
    assert block in (REPO_ROOT / "docs" / "revert.md").read_text()
    return block


@pytest.mark.parametrize("case", CASES)
def test_revert_restores_release_a_whatever_came_after_it(
    history: History,
    case: str,
    images: Images,
    cluster: FakeKubeServer,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    h, a, b = history, history.a, history.b
    base = f"case-{case}"
    h.switch(base)
    head = h.git("rev-parse", base)
    since = h.git("rev-list", "--first-parent", f"{a.commit}..{base}").split()

    branch = f"rollback-{case}"
    made = h.run("mlgitops", "revert", "--base", base, "--branch", branch, "--pr-body", "pr.md")
    assert made.stderr.startswith(
        f"created branch {branch}: restores {a.record.bento_tag} (the tree of {a.commit[:12]})"
        f" in place of {b.record.bento_tag}, taking back {len(since)} commits of {base}"
    ), made.stderr
    assert h.git("rev-parse", base) == head
    assert h.git("rev-parse", f"{branch}^") == head
    assert h.tree(branch) == h.tree(a.commit)
    body = (h.root / "pr.md").read_text()
    (h.root / "pr.md").unlink()
    for sha in since:
        assert f"- `{sha[:12]}` " in body
    assert "code and docs included" in body
    if case == "merge":  # the merge, and under it the commits it brought in
        merged = h.git("rev-list", f"{base}^1..{base}^2").split()
        assert len(merged) == 2
        assert f"- `{head[:12]}` Merge branch 'feature' (merge)" in body
        for sha in merged:
            assert f"  - `{sha[:12]}` feature: " in body

    _checked_out_as_a(h, branch, tmp_path)

    _nodes_pull_from(cluster, images.a, images.b)
    _deploy(h, cluster, base, capsys)
    _ran(cluster, images.b, "registry")
    _deploy(h, cluster, branch, capsys)
    _ran(cluster, images.a, "registry")
    assert history_entries(cluster)[-1]["commit"] == h.git("rev-parse", branch)

    # The README's hand procedure gives the same tree.
    script = _hand_procedure().replace("base=main", f"base={base}")
    script = script.replace("revert/by-hand", f"by-hand-{case}")
    h.switch(base)
    done = subprocess.run(
        ["bash", "-e", "-c", script], cwd=h.root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert h.tree(f"by-hand-{case}") == h.tree(a.commit)
    assert h.git("rev-parse", f"by-hand-{case}^") == head
    h.switch(base)


@pytest.mark.parametrize("case", CASES)
def test_an_alert_about_release_b_prepares_the_same_rollback(
    history: History,
    case: str,
    images: Images,
    cluster: FakeKubeServer,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    h, a, b = history, history.a, history.b
    base = f"case-{case}"
    h.switch(base)
    prepared = f"revert/{b.record.bento_version}"
    with serving(h.root, tmp_path, base=base, env=h.env) as receiver:
        about_a = receiver.post(payload(bento_tag=a.record.bento_tag), token=receiver.token)
        untagged = receiver.post(payload(bento_tag=None), token=receiver.token)
        about_b = receiver.post(payload(bento_tag=b.record.bento_tag), token=receiver.token)
        again = receiver.post(payload(bento_tag=b.record.bento_tag), token=receiver.token)
    try:
        for refused in (about_a, untagged):
            assert refused.status_code == 409, refused.text
            assert (
                f"not {b.record.bento_tag}, the release {base} pins now" in refused.json()["error"]
            )
        assert about_b.status_code == 202, about_b.text
        assert about_b.json()["branch"] == prepared
        assert about_b.json()["restored"] == a.record.bento_tag
        assert h.tree(prepared) == h.tree(a.commit)
        assert h.git("rev-parse", f"{prepared}^") == h.git("rev-parse", base)
        assert again.status_code == 200
        assert again.json()["status"] == "already prepared"
        # Deployed, the branch the receiver prepared runs A's bytes again.
        _nodes_pull_from(cluster, images.a, images.b)
        _deploy(h, cluster, base, capsys)
        _ran(cluster, images.b, "registry")
        _deploy(h, cluster, prepared, capsys)
        _ran(cluster, images.a, "registry")
        assert history_entries(cluster)[-1]["commit"] == h.git("rev-parse", prepared)
    finally:
        if h.git("branch", "--list", prepared):
            h.git("branch", "-D", prepared)
        shutil.rmtree(h.root / "reports" / "revert", ignore_errors=True)


def test_a_rollback_runs_the_bytes_a_ran_though_its_tag_was_pushed_again(
    history: History,
    images: Images,
    cluster: FakeKubeServer,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A ran, then B; then A's tag is pushed again with other bytes. The revert commit's deploy
    pins the digest A ran (the history's), not the registry's new one: a rollback brings back
    known bytes."""
    h, a = history, history.a
    base, branch = "case-merge", "rollback-repushed"
    h.switch(base)
    h.run("mlgitops", "revert", "--base", base, "--branch", branch)
    _nodes_pull_from(cluster, images.a, images.b)
    _deploy(h, cluster, a.commit, capsys)
    _ran(cluster, images.a, "registry")
    _deploy(h, cluster, base, capsys)
    _ran(cluster, images.b, "registry")
    again = _push(images.registry, a, "release A, pushed again with other bytes")
    try:
        assert again.digest != images.a.digest
        cluster.registry.push(again.reference, again.digest, again.config)  # what nodes pull now

        err = _deploy(h, cluster, branch, capsys)

        assert (
            f"note: {a.record.image} ran as {images.a.digest} in #1; the registry now serves "
            f"{again.digest} under that tag (pushed again); going back to it, this deploy pins "
            f"{images.a.digest}"
        ) in err
        _ran(cluster, images.a, "history")
        assert history_entries(cluster)[-1]["commit"] == h.git("rev-parse", branch)
    finally:  # the module's other tests expect A's tag to name A's first bytes
        assert _push(images.registry, a, "release A").digest == images.a.digest

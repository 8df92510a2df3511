"""The pipeline image's recipe, without a full build: what goes in (every pin of the lock, with
hashes; the project's wheel; the commit's files and the monitor's DVC-tracked inputs, checked
against dvc.lock), the entrypoint, and the names k8s/dask relies on."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from mlgitops.config import load_params
from mlgitops.errors import ImageBuildError
from mlgitops.image.pipeline import (
    LOCK_FILE,
    add_dvc_outputs,
    build_project_wheel,
    lay_out_context,
    lock_pins,
    monitor_inputs,
    pipeline_containerfile_text,
    pipeline_repository,
    project_snapshot,
)
from mlgitops.revision import out_md5_in_lock
from tests.support.project import REPO_ROOT

LOCK = (REPO_ROOT / LOCK_FILE).read_text()


def test_the_wheelhouse_asks_for_every_pin_of_the_lock_and_nothing_else() -> None:
    pins = lock_pins(LOCK)
    # Every top-level `name==version` line of the lock, in its order, hashes dropped.
    expected = [line.split(" ")[0] for line in LOCK.splitlines() if re.match(r"^[A-Za-z0-9]", line)]
    assert pins == expected
    assert len(pins) > 200
    names = {pin.split("==")[0] for pin in pins}
    # The whole lock, not the serving closure: the pipeline's own tools are there too.
    assert {"dask", "distributed", "dvc", "bentoml", "scikit-learn", "pyarrow"} <= names
    assert not any("hash" in pin or " " in pin for pin in pins)


@pytest.mark.parametrize(
    ("lock", "message"),
    [
        ("# nothing pinned\n", "no `name==version` pins"),
        ("a==1 \\\n    --hash=sha256:00\nA==2 \\\n    --hash=sha256:11\n", "pinned twice"),
        ("a==1\nb==2\n", "no hashes"),
    ],
)
def test_a_lock_the_image_cannot_install_from_is_refused(lock: str, message: str) -> None:
    with pytest.raises(ImageBuildError, match=message):
        lock_pins(lock)


def test_the_containerfile_installs_the_hashed_lock_then_the_project_and_runs_mlgitops() -> None:
    text = pipeline_containerfile_text()
    run = text[text.index("RUN ") : text.index("COPY ")]
    # Every pin of the lock from the checked wheelhouse, with no network; then the project.
    assert "--no-deps -r /mnt/install/requirements.txt" in run
    assert "--no-index --find-links /mnt/install/wheels" in run
    assert "--no-deps /mnt/install/project/mlgitops-*.whl" in run
    assert run.index("requirements.txt") < run.index("mlgitops-*.whl") < run.index("$pip check;")
    assert "--mount=type=bind,source=install,target=/mnt/install" in text
    assert "COPY project /home/mlgitops/project" in text
    assert "WORKDIR /home/mlgitops/project" in text
    assert 'ENTRYPOINT ["/app/.venv/bin/mlgitops"]' in text
    [uid] = re.findall(r"^ARG PIPELINE_UID=(\d+)$", text, re.MULTILINE)
    assert "USER ${PIPELINE_UID}:${PIPELINE_UID}" in text
    assert int(uid) == 10001
    assert "HOME=/tmp" in text


def test_the_context_has_the_layout_the_containerfile_reads(tmp_path: Path) -> None:
    wheels = []
    for name in ("pip-26.3-py3-none-any.whl", "dask-2026.11.0-py3-none-any.whl"):
        wheels.append(tmp_path / name)
        wheels[-1].write_bytes(name.encode())
    project_wheel = tmp_path / "mlgitops-0.1.0-py3-none-any.whl"
    project_wheel.write_bytes(b"project")
    project = tmp_path / "snapshot"
    project.mkdir()
    (project / "params.yaml").write_text("x: 1\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    lay_out_context(ctx, LOCK, wheels, project_wheel, project)
    found = sorted(str(p.relative_to(ctx)) for p in ctx.rglob("*") if p.is_file())
    assert found == [
        "Containerfile",
        "install/project/mlgitops-0.1.0-py3-none-any.whl",
        "install/requirements.lock",
        "install/requirements.txt",
        "install/wheels/dask-2026.11.0-py3-none-any.whl",
        "install/wheels/pip-26.3-py3-none-any.whl",
        "project/params.yaml",
    ]
    assert (ctx / "install" / LOCK_FILE).read_text() == LOCK  # with its hashes
    assert (ctx / "install" / "requirements.txt").read_text().split() == lock_pins(LOCK)
    assert (ctx / "Containerfile").read_text() == pipeline_containerfile_text()


def _dvc_lock(path: str, data: bytes) -> str:
    md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
    return yaml.safe_dump(
        {"schema": "2.0", "stages": {"profile": {"outs": [{"path": path, "md5": md5}]}}}
    )


def test_a_dvc_output_goes_in_only_with_the_bytes_dvc_lock_records(tmp_path: Path) -> None:
    root, project = tmp_path / "root", tmp_path / "project"
    (root / "artifacts").mkdir(parents=True)
    project.mkdir()
    profile = Path("artifacts/reference_profile.json")
    (root / profile).write_bytes(b'{"edited": true}')
    lock = _dvc_lock(profile.as_posix(), b'{"released": true}')
    assert out_md5_in_lock(lock, profile.as_posix(), "dvc.lock") is not None
    with pytest.raises(ImageBuildError, match=r"reference_profile.json: not the file dvc.lock"):
        add_dvc_outputs(root, project, [profile], lock)
    assert not (project / profile).exists()

    (root / profile).write_bytes(b'{"released": true}')
    add_dvc_outputs(root, project, [profile], lock)
    assert (project / profile).read_bytes() == b'{"released": true}'

    (root / profile).unlink()
    (project / profile).unlink()
    with pytest.raises(ImageBuildError, match=r"missing; run `dvc pull"):
        add_dvc_outputs(root, project, [profile], lock)
    with pytest.raises(ImageBuildError, match="neither in Git nor an output"):
        add_dvc_outputs(root, project, [Path("artifacts/other.json")], lock)


def test_the_project_snapshot_is_the_commit_plus_the_monitors_inputs(tmp_path: Path) -> None:
    """The real repository: HEAD's files (never uncommitted edits) and the reference profile,
    which only DVC holds, at the bytes HEAD's dvc.lock records."""
    params = load_params(REPO_ROOT / "params.yaml")
    profile = Path(params.paths.profile)
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    dvc_lock = (REPO_ROOT / "dvc.lock").read_text()
    expected_md5 = out_md5_in_lock(dvc_lock, profile.as_posix(), "dvc.lock")
    if not (REPO_ROOT / profile).is_file() or (
        hashlib.md5((REPO_ROOT / profile).read_bytes(), usedforsecurity=False).hexdigest()
        != expected_md5
    ):
        pytest.fail(f"{profile} is not checked out at HEAD's bytes: run `dvc checkout {profile}`")
    dest = tmp_path / "project"
    lock_text = project_snapshot(REPO_ROOT, head, dest, params)
    committed = subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"{head}:{LOCK_FILE}"],
                               capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert lock_text == committed
    for path in ("params.yaml", "release.json", "dvc.lock", "src/mlgitops/cli/monitor.py"):
        assert (dest / path).is_file(), path
    for path in monitor_inputs(params):
        assert (dest / path).is_file(), path
    assert not (dest / ".git").exists()
    assert not (dest / ".venv").exists()
    assert not (dest / "data").exists()  # the dataset is read by the workers, not baked in


def test_the_project_wheel_carries_the_cli_and_the_pipeline_recipe(tmp_path: Path) -> None:
    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    source = tmp_path / "src"
    source.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", "--format=tar", head],
                             capture_output=True, check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    wheel = build_project_wheel(source, tmp_path / "out", sys.executable, tmp_path / "log")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = zf.read(entry_points).decode()
    assert re.search(r"^mlgitops\s*=", scripts, re.MULTILINE), scripts
    assert "mlgitops/image/Containerfile.pipeline" in names
    assert "mlgitops/cli/monitor.py" in names


def test_the_manifests_run_the_image_this_recipe_names() -> None:
    params = load_params(REPO_ROOT / "params.yaml")
    kustomization = yaml.safe_load((REPO_ROOT / "k8s/dask/kustomization.yaml").read_text())
    [image] = kustomization["images"]
    assert image["name"] == pipeline_repository(params.package.image_repository)
    assert pipeline_repository("registry.example.com/mlgitops/fraud-detector") == (
        "registry.example.com/mlgitops/pipeline"
    )
    assert pipeline_repository("fraud-detector") == "pipeline"
    # k8s/dask runs `dask scheduler` and `dask worker` as the command: the lock provides `dask`.
    assert Path(sys.executable).with_name("dask").is_file()


def test_the_cli_builds_a_revision_that_exists_only(capsys: pytest.CaptureFixture[str]) -> None:
    from mlgitops.cli.main import main
    from mlgitops.errors import GitError

    assert main(["image", "--help"]) == 0
    assert "pipeline" in capsys.readouterr().out
    assert main(["image", "pipeline", "--rev", "no-such-revision"]) == GitError.exit_code
    assert "no-such-revision" in capsys.readouterr().err


def _stored(labels: dict[str, str]) -> dict:
    manifest = json.dumps({"layers": [{"size": 5}, {"size": 7}]})
    return {
        "FromImageID": "ab" * 32,
        "FromImageDigest": "sha256:" + "cd" * 32,
        "Manifest": manifest,
        "OCIv1": {"config": {"Labels": labels}},
    }


def test_a_stored_image_of_the_commit_is_reused_and_of_another_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """REPO:<commit12> already stored: a no-op when its revision label is that commit, an error
    (never an overwrite) when another commit's image sits under the tag."""
    from mlgitops.image import pipeline

    head = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    asked: list[str] = []
    stored = {"labels": {pipeline.LABEL_REVISION: head}}

    def inspect(self: object, ref: str) -> dict:
        asked.append(ref)
        return _stored(stored["labels"])

    monkeypatch.setattr(pipeline, "require_buildah", lambda: "buildah")
    monkeypatch.setattr(pipeline.Buildah, "inspect_image", inspect)
    result = pipeline.build_pipeline_image(REPO_ROOT, cache_dir=tmp_path)
    assert asked == [f"registry.example.com/mlgitops/pipeline:{head[:12]}"]
    assert result.built is False
    assert result.commit == head
    assert result.size_bytes == 12
    assert result.image_id == "sha256:" + "ab" * 32

    stored["labels"] = {pipeline.LABEL_REVISION: "f" * 40}
    with pytest.raises(ImageBuildError, match=f"built from commit '{'f' * 40}', not {head}"):
        pipeline.build_pipeline_image(REPO_ROOT, cache_dir=tmp_path)
    assert not (tmp_path / "tmp").exists()  # nothing was laid out, nothing built


FAKE_PYTHON = """#!/bin/sh
# Answers the interpreter probe; records a `pip wheel` call and leaves one wheel behind.
if [ "$1" = "-c" ]; then
  echo '{"implementation": "cpython", "version": "3.11", "system": "Linux", "machine": "x86_64",
         "libc": "2.36", "pip": "26.3"}'
  exit 0
fi
echo "$@" > "$FAKE_PIP_ARGS"
while [ "$#" -gt 0 ]; do
  if [ "$1" = "--wheel-dir" ]; then mkdir -p "$2"; touch "$2/pip-26.3-py3-none-any.whl"; fi
  shift
done
"""


def test_the_wheelhouse_checks_every_download_against_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlgitops.image.wheelhouse import ensure_wheelhouse

    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    monkeypatch.setenv("FAKE_PIP_ARGS", str(tmp_path / "args"))
    request = tmp_path / "request"
    request.mkdir()
    (request / "requirements.txt").write_text(LOCK)
    wheelhouse = ensure_wheelhouse(request, tmp_path / "cache", python=str(python), hashed=True)
    args = (tmp_path / "args").read_text().split()
    assert args[:3] == ["-m", "pip", "wheel"]
    assert "--require-hashes" in args
    assert not [a for a in args if a.startswith("pip==")]  # the lock's own pip, hashed
    assert [w.name for w in wheelhouse.wheels] == ["pip-26.3-py3-none-any.whl"]

    (request / "requirements.txt").write_text("a==1 \\\n    --hash=sha256:00\n")
    with pytest.raises(ImageBuildError, match="pins no pip"):
        ensure_wheelhouse(request, tmp_path / "cache", python=str(python), hashed=True)

"""`mlgitops image build|push|run`: thin wrappers, exercised through the root CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlgitops.cli.main import main
from mlgitops.errors import ImageBuildError
from mlgitops.registry import head_manifest_digest
from tests.support.registry import local_registry


def test_image_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["image", "--help"]) == 0
    out = capsys.readouterr().out
    for command in ("build", "push", "run"):
        assert command in out


def test_archive_without_repository_is_an_image_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "b.tar"
    archive.write_bytes(b"")
    assert main(["image", "build", "--archive", str(archive)]) == ImageBuildError.exit_code
    assert "--archive needs --repository" in capsys.readouterr().err


@pytest.mark.container
@pytest.mark.timeout(900)
def test_build_then_push_through_the_cli(
    toy_bento: Path,
    toy_repository: str,
    toy_version: str,
    image_cache: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if shutil.which("docker-registry") is None:
        pytest.skip("needs docker-registry (apt-get install -y docker-registry)")
    cache = ["--cache-dir", str(image_cache)]
    args = ["image", "build", "--archive", str(toy_bento), "--repository", toy_repository, *cache]
    assert main(args) == 0
    assert main(args) == 0  # the second time a no-op
    out = capsys.readouterr().out
    assert f"{toy_repository}:{toy_version}: already built, nothing to do" in out
    with local_registry(tmp_path / "registry") as registry:
        destination = f"{registry.host}/mlgitops/toy"
        image = f"{toy_repository}:{toy_version}"
        push = ["image", "push", "--registry", destination, "--image", image, "--no-tls-verify"]
        assert main([*push, *cache]) == 0
        out = capsys.readouterr().out
        digest = head_manifest_digest(registry.host, "mlgitops/toy", toy_version, tls_verify=False)
        assert f"{destination}:{toy_version} {digest} (verified)" in out
        assert f"pinned: {destination}@{digest}" in out

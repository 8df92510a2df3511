"""Push to a real CNCF distribution registry on 127.0.0.1 and round-trip the digest."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlgitops.errors import ImageBuildError
from mlgitops.image.build import build_image
from mlgitops.image.buildah import Buildah, image_id
from mlgitops.image.push import PushResult, pull_and_verify, push_image
from mlgitops.registry import fetch_manifest, head_manifest_digest
from tests.support.registry import local_registry

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory, container_tools: None):
    if shutil.which("docker-registry") is None:
        pytest.skip("needs docker-registry (apt-get install -y docker-registry)")
    with local_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture(scope="module")
def pushed(registry, toy_bento: Path, toy_repository: str, image_cache: Path) -> PushResult:
    built = build_image(toy_bento, toy_repository, cache_dir=image_cache)
    return push_image(
        built.ref, f"{registry.host}/mlgitops/toy", cache_dir=image_cache, tls_verify=False
    )


@pytest.mark.timeout(900)
def test_push_then_pull_round_trips_the_digest(
    registry,
    pushed: PushResult,
    toy_repository: str,
    toy_version: str,
    buildah: Buildah,
    image_cache: Path,
) -> None:
    tag = toy_version
    assert pushed.verified
    assert pushed.remote_ref == f"{registry.host}/mlgitops/toy:{tag}"
    # The registry's own word, through the HTTP API, with the OCI Accept header.
    assert head_manifest_digest(registry.host, "mlgitops/toy", tag, tls_verify=False) == (
        pushed.digest
    )
    _, manifest = fetch_manifest(registry.host, "mlgitops/toy", tag, tls_verify=False)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    local = buildah.inspect_image(f"{toy_repository}:{tag}")
    assert local is not None
    assert manifest["config"]["digest"] == image_id(local) == pushed.image_id
    # By digest too, as a deployment pinned to it would fetch it.
    assert head_manifest_digest(registry.host, "mlgitops/toy", pushed.digest, tls_verify=False)
    pull_and_verify(
        pushed.remote_ref, pushed.digest, pushed.image_id, tls_verify=False, cache_dir=image_cache
    )


@pytest.mark.timeout(300)
def test_pull_verification_catches_a_wrong_digest(pushed: PushResult, image_cache: Path) -> None:
    with pytest.raises(ImageBuildError, match="expected"):
        pull_and_verify(
            pushed.remote_ref,
            "sha256:" + "0" * 64,
            pushed.image_id,
            tls_verify=False,
            cache_dir=image_cache,
        )


@pytest.mark.timeout(120)
def test_push_of_a_missing_image_says_build_first(image_cache: Path, container_tools: None) -> None:
    with pytest.raises(ImageBuildError, match="image build"):
        push_image("localhost/mlgitops-test/none:0", "127.0.0.1:1/x", cache_dir=image_cache)

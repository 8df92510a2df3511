"""Push a built image to a registry with `buildah push`, then prove the registry holds it.

Proof, not trust: the manifest digest buildah wrote (`--digestfile`) must be the registry's
`Docker-Content-Digest` for the tag, and that manifest's config digest must be the local image ID.
(The local manifest digest differs from the pushed one by design: local storage keeps layers
uncompressed and buildah gzips them on push; the config digest is what stays the same.)
`pull_and_verify` closes the loop by pulling into separate, throwaway storage.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlgitops.errors import ImageBuildError
from mlgitops.image.buildah import Buildah, image_id, require_buildah
from mlgitops.image.cache import default_cache_dir
from mlgitops.registry import REPOSITORY, fetch_manifest, head_manifest_digest


@dataclass(frozen=True)
class PushResult:
    local_ref: str
    remote_ref: str
    digest: str  # manifest digest in the registry: pin deployments with remote@digest
    image_id: str  # config digest, identical locally and in the registry
    verified: bool

    @property
    def pinned(self) -> str:
        return f"{self.remote_ref.rsplit(':', 1)[0]}@{self.digest}"


def parse_destination(destination: str) -> tuple[str, str]:
    """`HOST[:PORT]/REPO` -> (HOST[:PORT], REPO); the tag comes from the image, not from here."""
    host, _, repository = destination.strip().partition("/")
    if not host or not repository:
        raise ImageBuildError(f"registry destination {destination!r}: expected HOST[:PORT]/REPO")
    if "." not in host and ":" not in host and host != "localhost":
        raise ImageBuildError(f"registry destination {destination!r}: {host!r} is not a host name")
    if not REPOSITORY.match(repository):
        raise ImageBuildError(
            f"registry destination {destination!r}: {repository!r} is not a repository name "
            "(lower case, no tag or digest)"
        )
    return host, repository


def split_tag(ref: str) -> tuple[str, str]:
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        raise ImageBuildError(f"image {ref!r} has no tag")
    return name, tag


def push_image(
    image_ref: str,
    destination: str,
    *,
    cache_dir: Path | None = None,
    tls_verify: bool = True,
    verify: bool = True,
    authfile: Path | None = None,
) -> PushResult:
    """Push local `image_ref` (REPO:VERSION) to `destination` (HOST[:PORT]/REPO) as `:VERSION`.

    `authfile` is the registry credentials file for buildah and the check alike (default: the
    containers-auth.json(5) search, as `buildah login` writes it)."""
    require_buildah()
    host, repository = parse_destination(destination)
    _, tag = split_tag(image_ref)
    buildah = Buildah.for_cache(Path(cache_dir) if cache_dir else default_cache_dir())
    info = buildah.inspect_image(image_ref)
    if info is None:
        raise ImageBuildError(f"image {image_ref} is not built (run `mlgitops image build` first)")
    local_id = image_id(info)
    remote_ref = f"{host}/{repository}:{tag}"
    with tempfile.TemporaryDirectory(prefix="mlgitops-push-") as tmp:
        digestfile = Path(tmp) / "digest"
        auth = ["--authfile", authfile] if authfile else []
        buildah(
            "push", f"--tls-verify={'true' if tls_verify else 'false'}", *auth,
            "--digestfile", digestfile, image_ref, f"docker://{remote_ref}",
            what=f"push {image_ref} to {remote_ref}", timeout=1800,
        )  # fmt: skip
        digest = digestfile.read_text(encoding="utf-8").strip()
    if not verify:
        return PushResult(image_ref, remote_ref, digest, local_id, verified=False)
    ask = {"tls_verify": tls_verify, "authfile": authfile}
    registry_digest, manifest = fetch_manifest(host, repository, tag, **ask)
    head_digest = head_manifest_digest(host, repository, tag, **ask)
    config_digest = manifest.get("config", {}).get("digest")
    if registry_digest != digest or head_digest != digest:
        raise ImageBuildError(
            f"{remote_ref}: registry serves manifest {registry_digest} (HEAD {head_digest}), "
            f"but buildah pushed {digest}"
        )
    if config_digest != local_id:
        raise ImageBuildError(
            f"{remote_ref}: registry manifest has config {config_digest}, local image is {local_id}"
        )
    return PushResult(image_ref, remote_ref, digest, local_id, verified=True)


def pull_and_verify(
    remote_ref: str,
    expected_digest: str,
    expected_image_id: str,
    *,
    tls_verify: bool = True,
    cache_dir: Path | None = None,
    authfile: Path | None = None,
) -> None:
    """Pull `remote_ref` into empty, throwaway storage; check its manifest digest and image ID.

    Separate storage, because pulling into the one that built the image would only add a name to
    the image already there and prove nothing.
    """
    require_buildah()
    scratch = (Path(cache_dir) if cache_dir else default_cache_dir()) / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pull-", dir=scratch) as tmp:
        fresh = Buildah(root=Path(tmp) / "root", runroot=Path(tmp) / "run")
        auth = ["--authfile", authfile] if authfile else []
        fresh(
            "pull", "--quiet", f"--tls-verify={'true' if tls_verify else 'false'}", *auth,
            f"docker://{remote_ref}", what=f"pull {remote_ref}", timeout=1800,
        )  # fmt: skip
        info = fresh.inspect_image(remote_ref)
        if info is None:
            raise ImageBuildError(f"pulled {remote_ref} but it is not in the fresh storage")
        pulled_digest, pulled_id = str(info["FromImageDigest"]), image_id(info)
    if pulled_digest != expected_digest or pulled_id != expected_image_id:
        raise ImageBuildError(
            f"pulled {remote_ref} is {pulled_digest} / {pulled_id}, "
            f"expected {expected_digest} / {expected_image_id}"
        )

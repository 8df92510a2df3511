"""The one place that knows how buildah is invoked.

Every call uses the same storage (`--root`/`--runroot` under the mlgitops cache and the `vfs`
driver), so images built by the CLI and by the tests are found by each other and nothing touches
the machine's global container storage. `vfs` needs neither fuse nor kernel overlay support, which
is what makes it work on CI machines and inside unprivileged sandboxes; it costs disk, not
correctness. Isolation is `chroot`: no runc/crun namespaces are needed, at the price of sharing
the host network (which `run` relies on to reach the server).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgitops.errors import ImageBuildError
from mlgitops.image.proc import run

STORAGE_DRIVER = "vfs"
ISOLATION = "chroot"


def require_buildah() -> str:
    found = shutil.which("buildah")
    if found is None:
        raise ImageBuildError(
            "buildah is not installed (apt-get install -y buildah); it builds the OCI image"
        )
    return found


@dataclass(frozen=True)
class Buildah:
    root: Path
    runroot: Path
    executable: str = "buildah"

    @classmethod
    def for_cache(cls, cache_dir: Path) -> Buildah:
        return cls(
            root=cache_dir / "containers" / "storage", runroot=cache_dir / "containers" / "run"
        )

    def argv(self, *args: str | Path) -> list[str]:
        return [
            self.executable,
            "--root", str(self.root),
            "--runroot", str(self.runroot),
            "--storage-driver", STORAGE_DRIVER,
            *(str(arg) for arg in args),
        ]  # fmt: skip

    def __call__(
        self, *args: str | Path, what: str, timeout: float = 300, log: Path | None = None
    ) -> str:
        return run(self.argv(*args), what=what, timeout=timeout, log=log).stdout

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        """`buildah inspect` of a local image, or None when no such image is stored."""
        try:
            out = self("inspect", "--type", "image", ref, what=f"inspect image {ref}", timeout=60)
        except ImageBuildError as error:
            if "image not known" in str(error) or "no such image" in str(error).lower():
                return None
            raise
        return json.loads(out)

    def image_exists(self, ref: str) -> bool:
        return self.inspect_image(ref) is not None

    def remove_image(self, ref: str) -> None:
        self("rmi", "--force", ref, what=f"remove image {ref}", timeout=120)


def image_id(info: dict[str, Any]) -> str:
    """The config digest ("sha256:..."): the identity that push, pull and compression keep."""
    raw = str(info["FromImageID"])
    return raw if raw.startswith("sha256:") else f"sha256:{raw}"


def image_digest(info: dict[str, Any]) -> str:
    """The manifest digest ("sha256:..."), what a registry serves and a deployment pins."""
    return str(info["FromImageDigest"])


def image_labels(info: dict[str, Any]) -> dict[str, str]:
    return dict(info.get("OCIv1", {}).get("config", {}).get("Labels") or {})


def image_config(info: dict[str, Any]) -> dict[str, Any]:
    return dict(info.get("OCIv1", {}).get("config", {}) or {})


def image_size(info: dict[str, Any]) -> int:
    """Uncompressed size in bytes: local storage keeps layers as plain tar, and the manifest
    records each layer's size."""
    manifest = json.loads(info["Manifest"])
    return sum(int(layer["size"]) for layer in manifest.get("layers", []))

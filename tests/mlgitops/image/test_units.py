"""Unit tests of the image package: no buildah, no network."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from mlgitops.errors import ArtifactError, ImageBuildError
from mlgitops.image.base import BaseRecipe, prune_rootfs
from mlgitops.image.bento import check_python, extract_bento, parse_bento_yaml, read_bento_info
from mlgitops.image.build import bud_command, containerfile_text, image_ref
from mlgitops.image.buildah import Buildah, image_size
from mlgitops.image.cache import recipe_key
from mlgitops.image.proc import run, tail
from mlgitops.image.push import parse_destination, split_tag
from mlgitops.image.wheelhouse import check_interpreter, wheelhouse_key
from tests.support.registry import registry_config

BENTO_YAML = "name: fraud-detector\nversion: 1a2b3c4d5e6f\nimage:\n  python_version: '3.11'\n"


def make_archive(path: Path, members: dict[str, bytes], mode: int = 0o600) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    return path


def test_recipe_key_is_order_independent_and_content_sensitive() -> None:
    assert recipe_key({"a": 1, "b": [1, 2]}) == recipe_key({"b": [1, 2], "a": 1})
    assert recipe_key({"a": 1}) != recipe_key({"a": 2})


def test_base_recipe_key_changes_with_its_inputs() -> None:
    base = BaseRecipe(mirror="http://deb.debian.org/debian")
    assert base.key == BaseRecipe(mirror="http://deb.debian.org/debian").key
    assert base.key != BaseRecipe(mirror=base.mirror, packages=("python3.11", "curl")).key
    assert base.key != BaseRecipe(mirror=base.mirror, suite="trixie").key
    assert base.key != BaseRecipe(mirror=base.mirror, timestamp=base.timestamp + 1).key
    assert base.image_ref == f"localhost/mlgitops-base:bookworm-{base.key}"


def test_prune_rootfs_keeps_copyright_and_drops_caches(tmp_path: Path) -> None:
    for rel in [
        "usr/share/doc/bash/copyright",
        "usr/share/doc/bash/changelog.Debian.gz",
        "usr/share/man/man1/bash.1.gz",
        "var/lib/apt/lists/deb.debian.org_dists",
        "var/cache/apt/archives/bash.deb",
        "var/cache/ldconfig/aux-cache",
        "usr/bin/python3.11",
        "etc/resolv.conf",
        "etc/hostname",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    recipe = BaseRecipe(mirror="http://deb.debian.org/debian")
    prune_rootfs(tmp_path, recipe.prune, recipe.doc_keep)
    assert (tmp_path / "usr/share/doc/bash/copyright").exists()
    assert not (tmp_path / "usr/share/doc/bash/changelog.Debian.gz").exists()
    assert not any((tmp_path / "usr/share/man").iterdir())
    assert not any((tmp_path / "var/lib/apt/lists").iterdir())
    assert not (tmp_path / "var/cache/apt/archives/bash.deb").exists()
    # Inode numbers and ctimes: the one file two debootstrap runs differed in.
    assert not (tmp_path / "var/cache/ldconfig/aux-cache").exists()
    assert (tmp_path / "usr/bin/python3.11").exists()
    assert (tmp_path / "etc/resolv.conf").read_text() == ""


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        ("fraud-detector", "localhost/fraud-detector:v1"),
        ("mlgitops/fraud-detector", "localhost/mlgitops/fraud-detector:v1"),
        ("registry.example.com/mlgitops/fd", "registry.example.com/mlgitops/fd:v1"),
        ("127.0.0.1:5000/fd", "127.0.0.1:5000/fd:v1"),
        ("localhost/fd", "localhost/fd:v1"),
    ],
)
def test_image_ref_qualifies_like_buildah(repository: str, expected: str) -> None:
    assert image_ref(repository, "v1") == expected


@pytest.mark.parametrize("repository", ["", "fd:latest", "registry.example.com/fd@sha256:ab"])
def test_image_ref_rejects_tags_and_digests(repository: str) -> None:
    with pytest.raises(ImageBuildError):
        image_ref(repository, "v1")


def test_parse_destination() -> None:
    assert parse_destination("127.0.0.1:5000/mlgitops/fd") == ("127.0.0.1:5000", "mlgitops/fd")
    assert parse_destination("registry.example.com/fd") == ("registry.example.com", "fd")
    for bad in ["fd", "mlgitops/fd", "127.0.0.1:5000/", "127.0.0.1:5000/FD", "r.io/fd:tag"]:
        with pytest.raises(ImageBuildError):
            parse_destination(bad)


def test_split_tag() -> None:
    assert split_tag("127.0.0.1:5000/fd:abc") == ("127.0.0.1:5000/fd", "abc")
    with pytest.raises(ImageBuildError):
        split_tag("127.0.0.1:5000/fd")


def test_parse_bento_yaml_and_python_check() -> None:
    info = parse_bento_yaml(BENTO_YAML)
    assert (info.tag, info.python_version) == ("fraud-detector:1a2b3c4d5e6f", "3.11")
    check_python(info)
    with pytest.raises(ImageBuildError, match=r"Python 3\.12"):
        check_python(parse_bento_yaml(BENTO_YAML.replace("'3.11'", "'3.12'")))
    with pytest.raises(ArtifactError):
        parse_bento_yaml("service: x\n")


def test_read_and_extract_bento(tmp_path: Path) -> None:
    archive = make_archive(
        tmp_path / "b.tar",
        {"./bento.yaml": BENTO_YAML.encode(), "./env/python/requirements.txt": b"bentoml\n"},
    )
    assert read_bento_info(archive).version == "1a2b3c4d5e6f"
    dest = tmp_path / "out"
    assert extract_bento(archive, dest).name == "fraud-detector"
    # 0600 in the archive, world-readable once unpacked: the server user is not the owner.
    assert (dest / "env/python/requirements.txt").stat().st_mode & 0o777 == 0o644
    assert (dest / "env").stat().st_mode & 0o777 == 0o755


def test_extract_refuses_paths_outside_the_bento(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "b.tar", {"../evil": b"x", "bento.yaml": b""})
    with pytest.raises(tarfile.TarError):
        extract_bento(archive, tmp_path / "out")


def test_archive_errors_are_artifact_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="not found"):
        read_bento_info(tmp_path / "missing.tar")
    (tmp_path / "junk.tar").write_bytes(b"not a tar")
    with pytest.raises(ArtifactError):
        read_bento_info(tmp_path / "junk.tar")
    no_yaml = make_archive(tmp_path / "n.tar", {"src/service.py": b""})
    with pytest.raises(ArtifactError, match=r"no bento\.yaml"):
        read_bento_info(no_yaml)


def test_interpreter_must_match_the_base_image() -> None:
    good = {"implementation": "cpython", "version": "3.11", "system": "Linux", "machine": "x86_64"}
    check_interpreter(good)
    with pytest.raises(ImageBuildError, match=r"3\.12"):
        check_interpreter({**good, "version": "3.12"})


def test_wheelhouse_key_depends_on_requirements_wheels_and_interpreter() -> None:
    interp = {"version": "3.11", "pip": "24.0"}
    key = wheelhouse_key("a==1\n", {}, interp)
    assert key == wheelhouse_key("a==1\n", {}, dict(interp))
    assert key != wheelhouse_key("a==2\n", {}, interp)
    assert key != wheelhouse_key("a==1\n", {"x.whl": "00"}, interp)
    assert key != wheelhouse_key("a==1\n", {}, {**interp, "pip": "25.0"})


def test_run_error_names_the_command_and_shows_the_stderr_tail(tmp_path: Path) -> None:
    script = "import sys\nfor i in range(100): print(f'line {i}', file=sys.stderr)\nsys.exit(3)"
    with pytest.raises(ImageBuildError) as caught:
        run(["python3", "-c", script], what="do a thing")
    message = str(caught.value)
    assert message.startswith("do a thing: `python3 -c")
    assert "exited with 3" in message
    assert "line 99" in message
    assert "line 10\n" not in message
    with pytest.raises(ImageBuildError, match="command not found: no-such-tool"):
        run(["no-such-tool"], what="x")
    log = tmp_path / "x.log"
    with pytest.raises(ImageBuildError, match="full log"):
        run(["python3", "-c", script], what="x", log=log)
    assert "line 0" in log.read_text()


def test_tail_handles_empty_output() -> None:
    assert tail(None) == tail("") == "    (no output)"


def test_containerfile_is_offline_non_root_and_compiler_free() -> None:
    text = containerfile_text()
    assert "--no-index" in text
    assert "USER ${BENTO_UID}:${BENTO_UID}" in text
    assert "ARG BENTO_UID=10001" in text
    assert "BENTOML_HOME=/tmp/bentoml" in text
    for forbidden in ["apt-get", "build-essential", "gcc", "curl", "pip install uv"]:
        assert forbidden not in text
    assert '"/home/bentoml/bento/env/docker/entrypoint.sh"' in text


def test_bud_command_runs_without_network_and_never_pulls(tmp_path: Path) -> None:
    buildah = Buildah(root=tmp_path / "root", runroot=tmp_path / "run")
    argv = bud_command(buildah, tmp_path, "localhost/x:1", "base:1", {"k": "v"}, offline=True)
    assert "--pull-never" in argv
    assert "BASE_IMAGE=base:1" in argv
    assert argv[argv.index("--isolation") + 1] == "chroot"
    assert argv[argv.index("--storage-driver") + 1] == "vfs"
    if os.geteuid() == 0:
        assert argv[:2] == ["unshare", "--net"]
    online = bud_command(buildah, tmp_path, "localhost/x:1", "base:1", {}, offline=False)
    assert online[0] == "buildah"


def test_bud_command_stamps_the_build_epoch_not_the_clock(tmp_path: Path) -> None:
    buildah = Buildah(root=tmp_path / "root", runroot=tmp_path / "run")
    argv = bud_command(buildah, tmp_path, "localhost/x:1", "b:1", {}, offline=False, timestamp=7)
    assert argv[argv.index("--timestamp") + 1] == "7"
    assert "SOURCE_DATE_EPOCH=7" in argv  # seen by useradd inside the build
    assert "--identity-label=false" in argv


def test_image_size_sums_the_local_layers() -> None:
    manifest = {"layers": [{"size": 10}, {"size": 32}]}
    assert image_size({"Manifest": json.dumps(manifest)}) == 42


def test_registry_config_listens_on_loopback_only(tmp_path: Path) -> None:
    config = json.loads(registry_config(tmp_path, 5123))
    assert config["http"]["addr"] == "127.0.0.1:5123"
    assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path)

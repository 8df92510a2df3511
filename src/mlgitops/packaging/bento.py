"""Put a trained model into the BentoML model store and build the bento that serves it.

Both are content-addressed: the package stage passes a hash of what the bento serves and of its
release record as the version, so a tag that already exists holds the same model and record and
is kept as it is (a rebuild is a no-op). That is checked, not assumed: an existing model whose
metadata, or bento whose pin, is another record than the one being packaged is an error naming
the first field that differs (a tag never names two things, whatever put them in the store).

The bento pins its model by tag in `mlgitops/serving/pinned.json`, written into the bento's copy of
the package at build time. The service reads it at startup and never resolves `:latest`.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from mlgitops.epoch import source_date_epoch
from mlgitops.errors import PackagingError
from mlgitops.io import atomic_write
from mlgitops.packaging.imports import PACKAGE, module_closure, package_root
from mlgitops.serving.layout import (
    MODEL_CARD_FILE,
    MODEL_FILES,
    PINNED_FILE,
    PROFILE_FILE,
    REFERENCE_SCORES_FILE,
    SCHEMA_FILE,
    SERVICE_IMPORT,
)

# What the service imports at run time. Their versions, and those of everything they need, are
# pinned from requirements.lock, so the bento (and its image) runs what the tests ran, on any
# machine. BentoML adds its own pin.
RUNTIME_DISTRIBUTIONS = (
    "scikit-learn",
    "scipy",
    "numpy",
    "pandas",
    "joblib",
    "onnx",
    "onnxruntime",
    "threadpoolctl",
    "orjson",
    "pydantic",
    "pydantic-settings",
    "pyyaml",
    "prometheus-client",
    "starlette",
)
# uvicorn's fast event loop and HTTP parser (`uvicorn[standard]`).
OPTIONAL_RUNTIME_DISTRIBUTIONS = ("uvloop", "httptools")


def _store_error(action: str, error: Exception) -> PackagingError:
    return PackagingError(f"{action}: {type(error).__name__}: {error}")


def save_model(
    *,
    name: str,
    version: str,
    model_file: Path,
    profile_file: Path,
    schema_file: Path,
    model_card_file: Path,
    metadata: dict[str, Any],
    extra_files: dict[str, Path] | None = None,
    model_format: str = "pipeline",
    reference_scores: bytes | None = None,
) -> str:
    """Save the model with its profile, schema and card (and `extra_files`, {name in the entry:
    source}: the score reference, the rules) under `name:version`; return the tag.

    `model_file` is the file the pod serves, stored under its format's name (`MODEL_FILES`);
    a model served without its pipeline (format onnx) needs the pipeline's `reference_scores`
    to self-check against. The model store is the one of `BENTOML_HOME`. An existing tag is
    kept if its metadata is `metadata` (the version hashes model and record, so the same tag
    means the same model and record); PackagingError otherwise.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    tag = f"{name}:{version}"
    # BentoML's model metadata cannot hold null; an absent key reads back the same.
    stored = {key: value for key, value in metadata.items() if value is not None}
    try:
        existing = bentoml.models.get(tag)
    except NotFound:
        pass
    else:
        require_same(f"model {tag}", "metadata", dict(existing.info.metadata), stored)
        return str(existing.tag)
    extra = dict(sorted((extra_files or {}).items()))
    for source in (model_file, profile_file, schema_file, model_card_file, *extra.values()):
        if not Path(source).is_file():
            raise PackagingError(f"{source}: not found; cannot save model {tag}")
    if model_format not in MODEL_FILES:
        raise PackagingError(f"unknown model format {model_format!r}")
    if (model_format != "pipeline") != (reference_scores is not None):
        # A pipeline checks itself; any other format only against the pipeline's scores.
        raise PackagingError(f"model format {model_format}: reference scores iff no pipeline")
    labels = {"mlgitops.io/kind": "fraud-model"}
    try:
        with bentoml.models.create(tag, labels=labels, metadata=stored) as model:
            shutil.copyfile(model_file, model.path_of(MODEL_FILES[model_format]))
            if reference_scores is not None:
                Path(model.path_of(REFERENCE_SCORES_FILE)).write_bytes(reference_scores)
            shutil.copyfile(profile_file, model.path_of(PROFILE_FILE))
            shutil.copyfile(schema_file, model.path_of(SCHEMA_FILE))
            shutil.copyfile(model_card_file, model.path_of(MODEL_CARD_FILE))
            for name, source in extra.items():
                shutil.copyfile(source, model.path_of(name))
    except Exception as error:  # BentoML raises many kinds; all mean "not saved"
        raise _store_error(f"saving model {tag}", error) from error
    return tag


def _first_difference(there: Any, here: Any, where: str = "") -> str | None:
    """The first key path at which two JSON-like values differ, with both values."""
    if isinstance(there, dict) and isinstance(here, dict):
        for key in sorted(set(there) | set(here)):
            path = f"{where}.{key}" if where else str(key)
            if key not in there or key not in here:
                side = "only here" if key not in there else "only in the store"
                return f"{path}: {side}"
            found = _first_difference(there[key], here[key], path)
            if found is not None:
                return found
        return None
    if there != here:
        return f"{where or '(value)'}: {there!r} in the store, {here!r} here"
    return None


def require_same(what: str, part: str, there: Any, here: Any) -> None:
    """PackagingError unless the store's `there` equals `here` (what is being packaged)."""
    found = _first_difference(there, here)
    if found is not None:
        raise PackagingError(
            f"{what} exists in the BentoML store with another {part} ({found}); a tag must name "
            "one thing: delete the stored one (`bentoml models delete` / `bentoml delete`) and "
            "run `dvc repro` again"
        )


def stored_pin(bento: Any) -> dict[str, Any]:
    """The pin (`pinned.json`) of a bento in the store."""
    path = Path(bento.path) / "src" / "mlgitops" / "serving" / PINNED_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise PackagingError(f"bento {bento.tag}: cannot read its pin {path}: {error}") from None
    if not isinstance(raw, dict):
        raise PackagingError(f"bento {bento.tag}: its pin {path} is not a JSON object")
    return raw


def read_lock(lock_file: Path) -> dict[str, str]:
    """{canonical name: version} of every `name==version` line of a compiled requirements file."""
    from packaging.utils import canonicalize_name

    try:
        text = Path(lock_file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PackagingError(f"{lock_file}: not found (run `make lock`)") from None
    pins: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = _PIN.match(line)
        if match:
            pins[canonicalize_name(match["name"])] = match["version"]
        elif line.strip() and not line.lstrip().startswith(("#", "--hash")):
            raise PackagingError(
                f"{lock_file}:{number}: not a pinned requirement: {line.strip()!r}"
            )
    if not pins:
        raise PackagingError(f"{lock_file}: pins nothing (run `make lock`)")
    return pins


_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^]]*\])?==(?P<version>[^\s;\\]+)")


def _requirement_closure(roots: list[str]) -> list[str]:
    """Canonical names of the distributions `roots` need, transitively, with markers evaluated
    (the dependency graph is read from the installed metadata; versions come from the lock)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        try:
            distribution = importlib_metadata.distribution(name)
        except importlib_metadata.PackageNotFoundError:
            continue  # an optional dependency that the lock does not include
        seen.add(name)
        for line in distribution.requires or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            # Extras of a dependency are not requested here, so `extra == ...` markers are off.
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return sorted(seen)


def pinned_requirements(lock_file: Path) -> list[str]:
    """`name==version` from the lock for each runtime distribution and everything it needs.

    Pinning the whole closure, not only the top level, means two machines building the same bento
    version fill the wheelhouse with the same wheels and produce the same image. An installed
    version that differs from the lock is an error: the tests ran against the installed one.
    """
    pins = read_lock(lock_file)
    lines = []
    for name in _requirement_closure(
        ["bentoml", *RUNTIME_DISTRIBUTIONS, *OPTIONAL_RUNTIME_DISTRIBUTIONS]
    ):
        installed = importlib_metadata.version(name)
        if name not in pins:
            raise PackagingError(f"{lock_file}: does not pin {name} (run `make lock`)")
        if pins[name] != installed:
            raise PackagingError(
                f"{lock_file} pins {name}=={pins[name]} but {installed} is installed "
                "(run `make setup`)"
            )
        # BentoML writes its own `bentoml==` line into the bento's requirements.
        if name != "bentoml":
            lines.append(f"{name}=={pins[name]}")
    for dist in RUNTIME_DISTRIBUTIONS:
        if canonicalize(dist) not in pins:
            raise PackagingError(f"runtime requirement {dist} is not in {lock_file}")
    return lines


def canonicalize(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def service_module() -> str:
    return SERVICE_IMPORT.partition(":")[0]


def shipped_source_files() -> list[tuple[str, Path]]:
    """(path inside the bento's src/, source file) for every file of the package the bento ships,
    sorted: the service module and the project modules it imports, transitively, and nothing
    else. So pipeline, packaging or CLI edits leave the bento version alone."""
    root = package_root()
    files = [*module_closure(service_module(), root), root / "py.typed"]
    return sorted(
        (f"{PACKAGE}/{path.relative_to(root).as_posix()}", path) for path in files if path.is_file()
    )


def _stage_build_context(ctx: Path, pinned: dict[str, Any]) -> None:
    for dest, path in shipped_source_files():
        target = ctx / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (ctx / "mlgitops" / "serving" / PINNED_FILE).write_text(
        json.dumps(pinned, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def build_bento(
    *,
    bento_name: str,
    version: str,
    model_tag: str,
    release: dict[str, Any],
    requirements: list[str],
    experiment: dict[str, Any] | None = None,
) -> str:
    """Build bento `bento_name:version` serving `model_tag`; return the bento tag.

    The bento holds a copy of the `mlgitops` package (with the pin file), the pinned runtime
    requirements and the model. An existing tag is kept if its pin is the one this build would
    write (PackagingError otherwise), as for models. With `experiment` (the pin's experiment
    section, `serving.experiment.ExperimentPin.as_json`) it carries the challenger's model too,
    and the service serves both.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    tag = f"{bento_name}:{version}"
    pinned: dict[str, Any] = {"bento_tag": tag, "model_tag": model_tag, "release": release}
    if experiment is not None:
        pinned["experiment"] = experiment
    # As written to pinned.json and read back: JSON, so tuples and lists compare equal.
    pinned = json.loads(json.dumps(pinned))
    try:
        existing = bentoml.bentos.get(tag)
    except NotFound:
        pass
    else:
        require_same(f"bento {tag}", "pin (release record)", stored_pin(existing), pinned)
        return str(existing.tag)
    models = [model_tag]
    if experiment is not None:
        models.append(str(experiment["challenger_model_tag"]))
    for stored in models:
        try:
            bentoml.models.get(stored)
        except NotFound:
            message = f"model {stored} is not in the model store; save it first"
            raise PackagingError(message) from None
    with tempfile.TemporaryDirectory(prefix="mlgitops-bento-") as tmp:
        ctx = Path(tmp)
        _stage_build_context(ctx, pinned)
        try:
            bento = bentoml.bentos.build(
                SERVICE_IMPORT,
                name=bento_name,
                version=version,
                build_ctx=str(ctx),
                include=["mlgitops/**"],
                exclude=["**/__pycache__", "**/*.pyc"],
                labels={"mlgitops.io/model-tag": model_tag.replace(":", "-")},
                description=f"Fraud detector serving model {model_tag}.",
                python={"packages": requirements, "lock_packages": False},
                models=models,
            )
        except Exception as error:  # import errors of the service, store errors, ...
            raise _store_error(f"building bento {tag}", error) from error
    return str(bento.tag)


# BentoML stamps the build time into bento.yaml and each model.yaml, and the interpreter's patch
# release into model.yaml. Both vary between machines and neither changes what the bento serves.
_CREATION_TIME = re.compile(rb"^(?P<key>\s*creation_time: ).*$", re.MULTILINE)
_PYTHON_PATCH = re.compile(
    rb"^(?P<key>\s*python_version: )'?(?P<minor>3\.\d+)\.\d+'?$", re.MULTILINE
)


def normalize_metadata(name: str, data: bytes, epoch: int) -> bytes:
    """bento.yaml / model.yaml with machine- and clock-dependent fields made reproducible."""
    if not (name == "bento.yaml" or name.endswith("/model.yaml")):
        return data
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(epoch, UTC).isoformat().encode()
    data = _CREATION_TIME.sub(lambda m: m["key"] + b"'" + stamp + b"'", data)
    return _PYTHON_PATCH.sub(lambda m: m["key"] + b"'" + m["minor"] + b"'", data)


def write_reproducible_tar(source: Path, archive: Path, epoch: int) -> None:
    """A tar of `source` that depends only on the files' contents: sorted entries, one mtime,
    owner root, modes 0755/0644, no user or group names, no PAX timestamps."""

    def info(name: str, path: Path, size: int = 0) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.mtime = epoch
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = ""
        if path.is_dir():
            entry.type, entry.mode = tarfile.DIRTYPE, 0o755
        else:
            entry.size = size
            entry.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
        return entry

    paths = sorted(source.rglob("*"), key=lambda p: p.relative_to(source).as_posix())
    with tarfile.open(archive, "w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info("./", source))
        for path in paths:
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                raise PackagingError(f"{path}: only files and directories can go into a bento")
            name = "./" + path.relative_to(source).as_posix()
            if path.is_dir():
                tar.addfile(info(name + "/", path))
                continue
            data = normalize_metadata(name[2:], path.read_bytes(), epoch)
            tar.addfile(info(name, path, len(data)), io.BytesIO(data))


def export_bento(bento_tag: str, path: Path) -> None:
    """Export the bento as a tar archive at `path`, atomically and reproducibly: the same bento
    gives the same bytes on any machine (DVC tracks the archive by its md5).

    BentoML's own export adds the models (the store keeps them apart from the bento); its archive
    is unpacked and written again by `write_reproducible_tar`.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    path = Path(path)
    if path.suffix != ".tar":
        raise PackagingError(f"{path}: the bento archive must be a .tar file")
    epoch = source_date_epoch()
    with tempfile.TemporaryDirectory(prefix="mlgitops-export-") as tmp:
        exported, unpacked = Path(tmp) / "bento.tar", Path(tmp) / "bento"
        try:
            bentoml.bentos.export_bento(bento_tag, str(exported), output_format="tar")
        except NotFound:
            raise PackagingError(f"bento {bento_tag} is not in the bento store") from None
        except Exception as error:
            raise _store_error(f"exporting bento {bento_tag}", error) from error
        with tarfile.open(exported) as tar:
            tar.extractall(unpacked, filter="data")
        atomic_write(path, lambda out: write_reproducible_tar(unpacked, out, epoch))

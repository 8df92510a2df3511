"""Put a trained model into the BentoML model store and build the bento that serves it.

Both are content-addressed: the package stage passes the model's hash as the version, so a tag
that already exists holds the same model and is kept as it is (a rebuild is a no-op).

The bento pins its model by tag in `mlgitops/serving/pinned.json`, written into the bento's copy of
the package at build time. The service reads it at startup and never resolves `:latest`.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from mlgitops.errors import PackagingError
from mlgitops.io import atomic_write
from mlgitops.serving.layout import (
    MODEL_CARD_FILE,
    MODEL_FILE,
    PINNED_FILE,
    PROFILE_FILE,
    SCHEMA_FILE,
    SERVICE_IMPORT,
)

# What the service imports at run time; versions are pinned to the building environment so the
# image runs the library versions the model was tested with.
# BentoML adds its own pin.
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


def _store_error(action: str, error: Exception) -> PackagingError:
    return PackagingError(f"{action}: {type(error).__name__}: {error}")


def save_model(
    *,
    name: str,
    version: str,
    model_file: Path,
    profile_file: Path,
    schema_file: Path,
    metadata: dict[str, Any],
) -> str:
    """Save the model with its profile and schema under `name:version`; return the tag.

    The model store is the one of `BENTOML_HOME`. An existing tag is kept: the version is the
    model's content hash, so the same tag means the same model.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    tag = f"{name}:{version}"
    try:
        return str(bentoml.models.get(tag).tag)
    except NotFound:
        pass
    for source in (model_file, profile_file, schema_file):
        if not Path(source).is_file():
            raise PackagingError(f"{source}: not found; cannot save model {tag}")
    labels = {"mlgitops.io/kind": "fraud-model"}
    try:
        with bentoml.models.create(tag, labels=labels, metadata=dict(metadata)) as model:
            shutil.copyfile(model_file, model.path_of(MODEL_FILE))
            shutil.copyfile(profile_file, model.path_of(PROFILE_FILE))
            shutil.copyfile(schema_file, model.path_of(SCHEMA_FILE))
            card = Path(model_file).parent / MODEL_CARD_FILE
            if card.is_file():
                shutil.copyfile(card, model.path_of(MODEL_CARD_FILE))
    except Exception as error:  # BentoML raises many kinds; all mean "not saved"
        raise _store_error(f"saving model {tag}", error) from error
    return tag


# uvicorn's fast event loop and HTTP parser (`uvicorn[standard]`): shipped when installed here.
OPTIONAL_RUNTIME_DISTRIBUTIONS = ("uvloop", "httptools")


def _requirement_closure(roots: list[str]) -> list[str]:
    """The installed distributions that `roots` need, transitively, with markers evaluated."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    seen: dict[str, str] = {}
    pending = list(roots)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        try:
            distribution = importlib_metadata.distribution(name)
        except importlib_metadata.PackageNotFoundError:
            continue  # an optional dependency that is not installed here
        seen[name] = distribution.version
        for line in distribution.requires or []:
            try:
                requirement = Requirement(line)
            except InvalidRequirement:
                continue
            # Extras of a dependency are not requested here, so `extra == ...` markers are off.
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return [f"{name}=={version}" for name, version in sorted(seen.items())]


def pinned_requirements() -> list[str]:
    """`name==version` for each runtime distribution and everything it needs, as installed here.

    Pinning the whole closure, not only the top level, means two machines building the same bento
    version fill the wheelhouse with the same wheels and produce the same image.
    """
    for dist in RUNTIME_DISTRIBUTIONS:
        try:
            importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError as error:
            raise PackagingError(f"runtime requirement {dist} is not installed") from error
    closure = _requirement_closure(
        ["bentoml", *RUNTIME_DISTRIBUTIONS, *OPTIONAL_RUNTIME_DISTRIBUTIONS]
    )
    # BentoML writes its own `bentoml==` line into the bento's requirements.
    return [line for line in closure if not line.startswith("bentoml==")]


def package_source_dir() -> Path:
    """The directory of the `mlgitops` package that is running (the repository's src/mlgitops)."""
    import mlgitops

    return Path(mlgitops.__file__).resolve().parent


# The part of the package the service imports. Only these go into the bento, so that the bento
# (and its image) changes when serving code changes, not when pipeline code does.
SERVING_MODULES = (
    "__init__.py",
    "py.typed",
    "errors.py",
    "io.py",
    "schema.py",
    "profile.py",
    "release.py",
    "config.py",
)


# The pin is written per build.
_NOT_SHIPPED = frozenset({PINNED_FILE})


def shipped_source_files() -> list[tuple[str, Path]]:
    """(path inside the bento's src/, source file) for every file of the package the bento ships,
    sorted; the package stage can hash exactly these for the bento version."""
    source = package_source_dir()
    files = [(f"mlgitops/{name}", source / name) for name in SERVING_MODULES]
    for path in sorted((source / "serving").rglob("*")):
        skip = "__pycache__" in path.parts or path.suffix == ".pyc" or path.name in _NOT_SHIPPED
        if path.is_file() and not skip:
            files.append((f"mlgitops/{path.relative_to(source).as_posix()}", path))
    return sorted((dest, path) for dest, path in files if path.is_file())


def _stage_build_context(ctx: Path, pinned: dict[str, Any]) -> None:
    for dest, path in shipped_source_files():
        target = ctx / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    (ctx / "mlgitops" / "serving" / PINNED_FILE).write_text(
        json.dumps(pinned, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def build_bento(*, bento_name: str, version: str, model_tag: str, release: dict[str, Any]) -> str:
    """Build bento `bento_name:version` serving `model_tag`; return the bento tag.

    The bento holds a copy of the `mlgitops` package (with the pin file), the pinned runtime
    requirements and the model. An existing tag is kept, as for models.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    tag = f"{bento_name}:{version}"
    try:
        return str(bentoml.bentos.get(tag).tag)
    except NotFound:
        pass
    try:
        bentoml.models.get(model_tag)
    except NotFound:
        message = f"model {model_tag} is not in the model store; save it first"
        raise PackagingError(message) from None
    pinned = {"bento_tag": tag, "model_tag": model_tag, "release": release}
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
                python={"packages": pinned_requirements(), "lock_packages": False},
                models=[model_tag],
            )
        except Exception as error:  # import errors of the service, store errors, ...
            raise _store_error(f"building bento {tag}", error) from error
    return str(bento.tag)


def export_bento(bento_tag: str, path: Path) -> None:
    """Export the bento as a tar archive at `path`, atomically (no half-written archive)."""
    import bentoml
    from bentoml.exceptions import NotFound

    def write(tmp: Path) -> None:
        try:
            bentoml.bentos.export_bento(bento_tag, str(tmp), output_format="tar")
        except NotFound:
            raise PackagingError(f"bento {bento_tag} is not in the bento store") from None
        except Exception as error:
            raise _store_error(f"exporting bento {bento_tag}", error) from error

    path = Path(path)
    if path.suffix != ".tar":
        raise PackagingError(f"{path}: the bento archive must be a .tar file")
    atomic_write(path, write)

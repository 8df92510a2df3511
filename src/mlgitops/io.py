"""File helpers shared by the stages: atomic writes, content hashes, typed JSON artifacts."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mlgitops.errors import ArtifactError, validation_line

ModelT = TypeVar("ModelT", bound=BaseModel)

_CHUNK = 1 << 20


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it over `path`.

    A failure in `write` leaves whatever was at `path` before untouched. A `path` that is not a
    regular file (`/dev/null`, `/dev/stdout`, a FIFO) is written in place: renaming over it
    would replace the device with a file.
    """
    path = Path(path)
    if path.exists() and not path.is_file():
        write(path)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # mkstemp creates 0600; artifacts are meant to be read by others (CI, serving users).
        tmp.chmod(0o644)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_md5(path: Path) -> str:
    """MD5 as DVC computes it for a file, so hashes can be compared with .dvc files."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def load_pipeline(path: Path) -> Any:
    """The fitted scikit-learn Pipeline in a joblib file, or an ArtifactError naming the file."""
    import joblib
    from sklearn.pipeline import Pipeline

    try:
        model = joblib.load(path)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: model not found (run `dvc repro`)") from None
    except Exception as error:  # a truncated or foreign pickle can raise almost anything
        raise ArtifactError(
            f"{path}: cannot load the model: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(model, Pipeline):
        raise ArtifactError(f"{path}: expected a scikit-learn Pipeline, got {type(model).__name__}")
    return model


def read_json(path: Path) -> Any:
    """A JSON artifact, or an ArtifactError naming the file and what is wrong with it."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: not found (run `dvc repro` first)") from None
    except json.JSONDecodeError as error:
        raise ArtifactError(f"{path}: not valid JSON: {error}") from None


def save_model_json(model: BaseModel, path: Path) -> None:
    """Write a pydantic model as pretty JSON atomically, so a crash never leaves half a file."""
    atomic_write_text(path, model.model_dump_json(indent=2) + "\n")


def load_model_json(cls: type[ModelT], path: Path) -> ModelT:
    try:
        return cls.model_validate(read_json(path))
    except ValidationError as error:
        raise ArtifactError(f"{path}: {validation_line(error)}") from None

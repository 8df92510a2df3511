"""Running the current commit's bento on this machine (`mlgitops serve`, `make serve`).

Operator-side code: it never ships in a bento (the bento carries only what the pod imports).
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

from mlgitops.config import Params, ServingConfig
from mlgitops.errors import ArtifactError, ServingError
from mlgitops.git import current_commit
from mlgitops.release import ReleaseRecord, load_release

LOCALHOST = "127.0.0.1"


def ensure_bento(record: ReleaseRecord, archive: Path) -> None:
    """Import the commit's bento archive into the local store unless the tag is there already."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        bentoml.bentos.get(record.bento_tag)
        return
    except NotFound:
        pass
    if not archive.is_file():
        raise ArtifactError(
            f"bento {record.bento_tag} is neither in the BentoML store nor at {archive} "
            "(run `dvc repro` or `dvc pull`)"
        )
    # Absolute: BentoML opens a relative archive path against the filesystem root.
    bentoml.bentos.import_bento(str(Path(archive).resolve()))


def local_logs(params: Params) -> dict[str, str]:
    """Where a local server writes its logs: paths.serve_prediction_log and
    paths.serve_feedback_log, unless params.yaml's `serving:` names a sink (stdout, off, a path).
    Paths are absolute: relative ones are relative to where `mlgitops serve` runs, not the bento."""
    defaults = {
        "prediction_log": params.paths.serve_prediction_log,
        "feedback_log": params.paths.serve_feedback_log,
    }
    logs = {}
    for name, default in defaults.items():
        sink = getattr(params.serving, name) if name in params.serving.model_fields_set else default
        logs[name] = str(sink) if str(sink) in {"stdout", "off"} else str(Path(sink).resolve())
    return logs


def serve_environment(
    params: Params, record: ReleaseRecord, commit: str | None, base: dict[str, str]
) -> dict[str, str]:
    """The server's environment: serving settings from params.yaml, the local logs and the pinned
    tags. Settings params.yaml leaves out keep their value from `base`, if any
    (MLGITOPS_TRACING=true, ...)."""
    update: dict[str, str | None] = {
        "model_tag": record.model_tag,
        "bento_tag": record.bento_tag,
        "git_commit": commit,
        **local_logs(params),
    }
    settings = params.serving.model_copy(update=update)
    env = dict(base)
    env.update(settings.environment(exclude_unset=True))
    env.update(
        {
            "BENTOML_DO_NOT_TRACK": "True",
            # One OpenMP/BLAS thread per worker: requests are small, threads only contend.
            "OMP_NUM_THREADS": base.get("OMP_NUM_THREADS", "1"),
        }
    )
    return env


def ensure_secret_file(path: Path) -> Path:
    """`path` holding a secret only its owner may read: made (0600, 256 random bits as hex) when
    absent, else checked (kept across runs, so clients keep their token and request ids issued
    before a restart keep verifying). The absolute path; ServingError if it is not usable."""
    from mlgitops.serving.auth import SecretFile

    path = Path(path).resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise ServingError(
                f"{path}: readable by others (mode {mode:04o}); `chmod 600` it, or delete it "
                "for a new one"
            ) from None
        SecretFile(str(path), "secret file")  # one value a line, long enough
        return path
    except OSError as error:
        raise ServingError(f"{path}: cannot create it: {error}") from None
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    return path


def local_credentials(params: Params, base: dict[str, str]) -> dict[str, str]:
    """The credential variables of a local server: the feedback token and the request id key
    from the environment when set there, else the files under paths.serve_* (made when absent).
    A predict token only when MLGITOPS_PREDICT_TOKEN_FILE is set."""
    env = {}
    for field, default in (
        ("feedback_token_file", params.paths.serve_feedback_token),
        ("request_id_key_file", params.paths.serve_request_id_key),
    ):
        name = ServingConfig.env_name(field)
        given = base.get(name)
        # Absolute: the server does not run where `mlgitops serve` was started.
        env[name] = str(Path(given).resolve()) if given else str(ensure_secret_file(default))
    name = ServingConfig.env_name("predict_token_file")
    if base.get(name):
        env[name] = str(Path(base[name]).resolve())
    return env


def serve_command(bento_tag: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "bentoml", "serve", bento_tag,
        "--host", LOCALHOST, "--port", str(port),
    ]  # fmt: skip


def serve_release(params: Params, port: int) -> int:
    """Serve release.json's bento on 127.0.0.1:`port` until interrupted; the server's exit code.
    One line on stderr says where the logs go; stdout is the server's own log."""
    record = load_release(params.paths.release)
    ensure_bento(record, params.paths.bento_archive)
    env = serve_environment(params, record, current_commit(), dict(os.environ))
    env.update(local_credentials(params, env))
    ServingConfig.from_env(env)  # a bad or misspelt MLGITOPS_ variable: one line, not a traceback
    logs = local_logs(params)
    token = env[ServingConfig.env_name("feedback_token_file")]
    print(
        f"serving {record.bento_tag} on http://{LOCALHOST}:{port}; predictions are appended to "
        f"{logs['prediction_log']}, feedback to {logs['feedback_log']}; /feedback takes the "
        f"bearer token in {token}",
        file=sys.stderr,
        flush=True,
    )
    try:
        return subprocess.call(serve_command(record.bento_tag, port), env=env)
    except KeyboardInterrupt:
        return 130
    except OSError as error:
        raise ServingError(f"cannot start bentoml serve: {error}") from None

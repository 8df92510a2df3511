"""`mlgitops report pr --judge-from-base`: the verdict computed by the base revision's code.

A change must not judge itself: not with its params (mlgitops.policy) and not with its code. So
the judge is the base's own `mlgitops report pr`, run from a `git worktree` of the base commit
with a venv made from the base's requirements.lock, and the head is only data:

1. With the caller's credentials, the DVC objects the judge reads (head's model, test split and
   schema; base's model; head's data when the head changes the split) are fetched BY HASH into
   the local cache: the md5s come from head's and base's dvc.lock, the remote from the BASE's
   DVC config (a head's config could name a remote that collects credentials).
2. The base's venv: the running one when it has every pin of the base's lock (said so, with the
   lock's sha256), else one made from that lock under ~/.cache/mlgitops/judge-venvs/<sha256>.
3. The base's `mlgitops report pr --base B --head H` runs in that venv, from the worktree's src/
   (checked), with a scrubbed environment (mlgitops.reports.sandbox: no credentials) and writes
   the report and the verdict record; the head's pickle is scored in a further sandboxed process.

The result is the base code's report and PrVerdict, `judged_by: base`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from pydantic import ValidationError

from mlgitops import errors
from mlgitops.errors import JudgeError, validation_line
from mlgitops.git import read_blob, resolve_commit
from mlgitops.records import PrVerdict
from mlgitops.reports.sandbox import scrubbed_env
from mlgitops.revision import dvc_cache_dir, dvc_cache_file, dvc_out_md5, params_at, path_at

LOCK = "requirements.lock"
JUDGE_TIMEOUT_SECONDS = 1800
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.MULTILINE)

# Runs in the base's venv: argv[1] is the base worktree's src/, which must be what is imported.
_BOOT = """
import sys
from pathlib import Path
root = Path(sys.argv[1]).resolve()
sys.path.insert(0, str(root))
import mlgitops
if not Path(mlgitops.__file__).resolve().is_relative_to(root):
    sys.exit(f"error: mlgitops was imported from {mlgitops.__file__}, not from {root}")
from mlgitops.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(text: str) -> dict[str, str]:
    """name -> version of every `name==version` pin of a requirements lock."""
    return {_canonical(name): version for name, version in _PIN.findall(text)}


def missing_pins(pins: dict[str, str]) -> list[str]:
    """The pins the running interpreter's environment does not have installed as pinned."""
    installed = {
        _canonical(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"]
    }
    return [f"{name}=={ver}" for name, ver in pins.items() if installed.get(name) != ver]


def _venv_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "mlgitops" / "judge-venvs"


def base_venv(tree: Path, echo: Callable[[str], None]) -> Path:
    """The interpreter of a venv with every pin of the base's lock (`tree`/requirements.lock)."""
    lock = tree / LOCK
    if not lock.is_file():
        raise JudgeError(f"the base has no {LOCK}: its venv cannot be made")
    text = lock.read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()
    missing = missing_pins(lock_pins(text))
    if not missing:
        echo(
            f"judge: the base's {LOCK} (sha256 {digest[:16]}) is what the running venv has "
            f"installed (every pin): reusing {sys.prefix}"
        )
        return Path(sys.executable)
    venv = _venv_cache() / digest[:32]
    python = venv / "bin" / "python"
    if (venv / ".installed").is_file():
        echo(f"judge: reusing the venv of the base's {LOCK} (sha256 {digest[:16]}): {venv}")
        return python
    echo(
        f"judge: the running venv lacks {len(missing)} pins of the base's {LOCK} (e.g. "
        f"{missing[0]}): making {venv} from it (sha256 {digest[:16]})"
    )
    shutil.rmtree(venv, ignore_errors=True)
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    steps = [[sys.executable, "-m", "venv", str(venv)]]
    if Path(uv).is_file():
        steps.append([uv, "pip", "sync", "--python", str(python), "--require-hashes", str(lock)])
    else:
        pip = [str(python), "-m", "pip", "install", "--no-deps", "--require-hashes"]
        steps.append([*pip, "-r", str(lock)])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise JudgeError(f"making the base's venv failed ({step[0]}): {last}")
    venv.mkdir(parents=True, exist_ok=True)
    (venv / ".installed").write_text(digest + "\n")
    return python


@contextmanager
def base_worktree(repo: Path, commit: str) -> Iterator[Path]:
    """A detached `git worktree` of `commit`, removed afterwards; its DVC cache is the repo's."""
    holder = Path(tempfile.mkdtemp(prefix="mlgitops-judge-"))
    tree = holder / "base"
    added = subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "--detach", "-q", str(tree), commit],
        capture_output=True,
        text=True,
        check=False,
    )
    if added.returncode != 0:
        shutil.rmtree(holder, ignore_errors=True)
        last = (added.stderr.strip().splitlines() or ["no message"])[-1]
        raise JudgeError(f"git worktree add of the base {commit[:12]} failed: {last}")
    try:
        if (tree / ".dvc").is_dir():
            (tree / ".dvc" / "config.local").write_text(
                f"[cache]\n    dir = {dvc_cache_dir(repo)}\n"
            )
        yield tree
    finally:
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(holder, ignore_errors=True)


def _needed(repo: Path, base_commit: str, head_commit: str) -> list[str]:
    """The md5s of the DVC outputs the judge reads, from base's and head's dvc.lock."""
    wanted = []
    head_params, base_params = params_at(repo, head_commit), params_at(repo, base_commit)
    for commit, params, keys in (
        (head_commit, head_params, ("model", "test", "schema_file")),
        (base_commit, base_params, ("model",)),
    ):
        for key in keys:
            md5 = dvc_out_md5(repo, commit, path_at(params, commit, key))
            if md5:
                wanted.append(md5)
    data = (head_params.get("data") or {}).get("path") or "data/transactions.csv"
    for owner in (Path(data), *Path(data).parents):
        text = read_blob(repo, head_commit, f"{owner.as_posix()}.dvc")
        if text is not None and str(owner) != ".":
            outs = (yaml.safe_load(text) or {}).get("outs") or [{}]
            if isinstance(outs[0].get("md5"), str):
                wanted.append(outs[0]["md5"])
            break
    return wanted


def fetch_by_hash(repo: Path, tree: Path, md5s: list[str], echo: Callable[[str], None]) -> None:
    """Fetch the objects `md5s` missing from the local cache through the BASE's DVC remote
    (a .dvc file naming only the hashes, in the base worktree), with the caller's environment."""
    missing = [md5 for md5 in md5s if not dvc_cache_file(repo, md5).is_file()]
    if not missing or not (tree / ".dvc").is_dir():
        return
    outs = [{"md5": md5, "hash": "md5", "path": f"o{i}"} for i, md5 in enumerate(missing)]
    wanted = {"outs": outs}
    target = tree / "mlgitops-judge-objects.dvc"
    target.write_text(yaml.safe_dump(wanted))
    echo(f"judge: fetching {len(missing)} DVC objects by hash through the base's remote")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dvc"), "fetch", "-q", target.name],
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    target.unlink()
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        echo(f"judge: dvc fetch by hash did not fetch everything ({last}); the judge says what")


# The base judge's own errors that keep their code here (they say what is wrong with the inputs).
_PASSED_THROUGH = (
    errors.ConfigError,
    errors.ArtifactError,
    errors.GitError,
    errors.GateError,
    errors.ReleaseNotPassedError,
)


def judge_from_base(
    repo: Path, base: str, head: str, echo: Callable[[str], None] = lambda line: None
) -> tuple[str, PrVerdict]:
    """The report and verdict of head against base, computed by base's code (module doc)."""
    base_commit, head_commit = resolve_commit(repo, base), resolve_commit(repo, head)
    with base_worktree(repo, base_commit) as tree, tempfile.TemporaryDirectory() as scratch:
        fetch_by_hash(repo, tree, _needed(repo, base_commit, head_commit), echo)
        python = base_venv(tree, echo)
        out, record = Path(scratch) / "report.md", Path(scratch) / "verdict.json"
        home = Path(scratch) / "home"
        home.mkdir()
        args = ["report", "pr", "--base", base_commit, "--head", head_commit, "--repo", str(repo)]
        args += ["--output", str(out), "--verdict-json", str(record)]
        env = scrubbed_env(str(home))
        # The base's dvc and git (dvc.api for objects not yet cached) beside its interpreter.
        env["PATH"] = f"{python.parent}{os.pathsep}{env['PATH']}"
        env.update(CI="true", DVC_NO_ANALYTICS="1", GIT_CONFIG_NOSYSTEM="1")
        echo(f"judge: running the base's mlgitops ({base_commit[:12]}) on head {head_commit[:12]}")
        try:
            done = subprocess.run(
                [str(python), "-I", "-c", _BOOT, str(tree / "src"), *args],
                cwd=tree,
                env=env,
                capture_output=True,
                text=True,
                timeout=JUDGE_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise JudgeError(f"the base's judge took over {JUDGE_TIMEOUT_SECONDS} s") from None
        last = (done.stderr.strip().splitlines() or [""])[-1].removeprefix("error: ")
        if not record.is_file():
            if "--verdict-json" in done.stderr or "No such option" in done.stderr:
                raise JudgeError(
                    f"the base's mlgitops ({base_commit[:12]}) has no trusted judge (no "
                    "`report pr --verdict-json`: it predates it); judge with a later base"
                )
            for kind in _PASSED_THROUGH:
                if done.returncode == kind.exit_code:
                    raise kind(f"the base's judge: {last}")
            raise JudgeError(f"the base's judge exited {done.returncode}: {last}")
        try:
            verdict = PrVerdict.model_validate_json(record.read_text())
        except ValidationError as error:
            raise JudgeError(
                f"the base's judge wrote no verdict record: {validation_line(error)}"
            ) from None
        if done.returncode != verdict.exit_code or verdict.head_commit != head_commit:
            raise JudgeError(
                f"the base's judge exited {done.returncode} with a verdict record for "
                f"{verdict.head_commit[:12]} saying exit {verdict.exit_code}"
            )
        # The base's judge was given commits; the report names them as the caller did.
        text = out.read_text() if out.is_file() else ""
        text = text.replace(f"`{base_commit}`", f"`{base}`").replace(
            f"`{head_commit}`", f"`{head}`"
        )
    return text, verdict.model_copy(update={"judged_by": "base", "base": base, "head": head})

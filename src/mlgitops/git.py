"""The one way mlgitops talks to Git: resolve revisions and read objects, never the work tree.

Deploy renders manifests from a commit, image build packs the bento of a commit and `serve`
stamps the current commit; all of them go through here, so failures read the same: a
`GitError` naming the repository and the revision.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

from mlgitops.errors import GitError

# Local object reads only; a hang (a lock, a network filesystem) must not stall a deploy.
TIMEOUT_S = 60.0


def _run(
    repo: Path | None, args: tuple[str, ...], *, binary: bool, stdin: bytes | None = None
) -> str | bytes:
    where = ["-C", str(repo)] if repo is not None else []
    try:
        proc = subprocess.run(
            ["git", *where, *args],
            input=stdin,
            capture_output=True,
            check=False,
            text=not binary,
            timeout=TIMEOUT_S,
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        message = f"no answer after {TIMEOUT_S:g} s"
        raise GitError(f"git {' '.join(args)} in {repo or Path()}: {message}") from None
    if proc.returncode != 0:
        stderr = proc.stderr
        if isinstance(stderr, bytes):
            stderr = stderr.decode(errors="replace")
        message = stderr.strip() or f"exit {proc.returncode}"
        raise GitError(f"git {' '.join(args)} in {repo or Path()}: {message}")
    return proc.stdout


def run(repo: Path | None, *args: str) -> str:
    """git's stdout as text; a failure is a GitError carrying git's own message."""
    return str(_run(repo, args, binary=False))


def run_bytes(repo: Path | None, *args: str) -> bytes:
    out = _run(repo, args, binary=True)
    return out if isinstance(out, bytes) else out.encode()


def require_repository(repo: Path | None) -> None:
    """GitError "<dir>: not a Git repository" (or no such directory) unless `repo` is one."""
    where = Path(repo if repo is not None else Path()).absolute()
    if not where.is_dir():
        raise GitError(f"{where}: no such directory")
    try:
        run(where, "rev-parse", "--git-dir")
    except GitError:
        raise GitError(f"{where}: not a Git repository") from None


def repo_root(start: Path | None = None) -> Path:
    """The top of the work tree holding `start` (default: the current directory)."""
    try:
        return Path(run(start, "rev-parse", "--show-toplevel").strip())
    except GitError:
        require_repository(start)
        raise


def resolve_commit(repo: Path, rev: str) -> str:
    """The full sha of REV's commit; GitError if REV names no commit in this repository."""
    if not rev or rev.startswith("-"):
        raise GitError(f"invalid revision {rev!r}")
    try:
        out = run(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
        return out.strip()
    except GitError:
        # Otherwise a directory that is no repository reads as "HEAD is not a commit".
        require_repository(repo)
        raise GitError(f"revision {rev!r} is not a commit of the repository at {repo}") from None


def current_commit(repo: Path | None = None) -> str | None:
    """HEAD's commit, or None outside a Git work tree (or before the first commit)."""
    try:
        return run(repo, "rev-parse", "--verify", "--quiet", "HEAD").strip() or None
    except GitError:
        return None


def read_blob(repo: Path, commit: str, path: str) -> str | None:
    """The text of `path` at `commit`, or None when the commit has no such file."""
    try:
        return run(repo, "cat-file", "blob", f"{commit}:{path}")
    except GitError:
        return None


def read_blobs(repo: Path, commit: str, paths: list[str]) -> dict[str, bytes]:
    """The contents of those of `paths` that are files at `commit` (one `git cat-file --batch`)."""
    if not paths:
        return {}
    query = "".join(f"{commit}:{path}\n" for path in paths).encode()
    out = run_bytes_input(repo, query, "cat-file", "--batch")
    found: dict[str, bytes] = {}
    at = 0
    for path in paths:
        end = out.index(b"\n", at)
        header = out[at:end].split()
        at = end + 1
        if header[-1] in (b"missing", b"ambiguous"):  # "<name> missing": no content follows
            continue
        _, kind, size = header
        if kind == b"blob":
            found[path] = out[at : at + int(size)]
        at += int(size) + 1
    return found


def run_bytes_input(repo: Path | None, stdin: bytes, *args: str) -> bytes:
    out = _run(repo, args, binary=True, stdin=stdin)
    return out if isinstance(out, bytes) else out.encode()


def extract_tree(repo: Path, commit: str, subdir: str, dest: Path) -> None:
    """Unpack `subdir` of `commit` into `dest` straight from Git objects."""
    data = run_bytes(repo, "archive", "--format=tar", commit, "--", subdir)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        # The "data" filter refuses absolute paths, links out of dest and device files.
        archive.extractall(dest, filter="data")

"""Thin subprocess wrappers: every failure names the command and shows the tail of its output."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from mlgitops.errors import ImageBuildError, MlgitopsError

# Enough lines to see a pip resolver error or a failing RUN step, few enough for a terminal.
TAIL_LINES = 25


def tail(text: str | bytes | None, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of `text`, indented, or a placeholder when there is nothing."""
    if text is None:
        return "    (no output)"
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    kept = [line for line in text.rstrip().splitlines() if line.strip()][-lines:]
    return "\n".join(f"    {line}" for line in kept) if kept else "    (no output)"


def describe(cmd: Sequence[str | os.PathLike[str]]) -> str:
    return shlex.join(str(part) for part in cmd)


def run(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    what: str,
    error: type[MlgitopsError] = ImageBuildError,
    timeout: float | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` to completion; raise `error` naming `what` and the command when it fails.

    With `log`, stdout and stderr go (interleaved, as a person would read them) to that file
    instead of memory: long builds stay inspectable after the fact, and the error message
    quotes the tail of the file.
    """
    argv = [str(part) for part in cmd]
    full_env = {**os.environ, **env} if env is not None else None
    try:
        if log is None:
            proc = subprocess.run(
                argv,
                cwd=cwd,
                env=full_env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            output = proc.stderr if proc.stderr.strip() else proc.stdout
        else:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("w", encoding="utf-8") as sink:
                proc = subprocess.run(
                    argv,
                    cwd=cwd,
                    env=full_env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                    check=False,
                )
            output = log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise error(f"{what}: command not found: {argv[0]} (in `{describe(argv)}`)") from None
    except subprocess.TimeoutExpired as exc:
        where = f" (log: {log})" if log else ""
        raise error(
            f"{what}: timed out after {timeout:.0f}s: `{describe(argv)}`{where}\n"
            f"{tail(exc.stderr or exc.stdout)}"
        ) from None
    if proc.returncode != 0:
        where = f" (full log: {log})" if log else ""
        raise error(
            f"{what}: `{describe(argv)}` exited with {proc.returncode}{where}\n{tail(output)}"
        )
    return proc

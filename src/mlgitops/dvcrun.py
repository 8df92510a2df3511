"""The one way mlgitops runs the `dvc` command: the DVC of this very environment, whatever PATH
says, with its output captured for the caller to report."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path


def run_dvc(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=None if env is None else dict(env),
    )


def stream_dvc(
    *args: str, cwd: Path, on_line: Callable[[str], None], env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`run_dvc`, handing each line of output to `on_line` as DVC prints it (stderr merged into
    stdout, in order), for progress and for logs that survive an interrupted run."""
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=None if env is None else dict(env),
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            on_line(line.rstrip("\n"))
    return subprocess.CompletedProcess(process.args, process.returncode, "".join(lines), "")

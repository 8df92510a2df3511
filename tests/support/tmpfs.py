"""A small tmpfs mounted for a test, to fill a file system for real (ENOSPC, short writes)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(directory: Path, size: str = "1m") -> Iterator[Path]:
    """`mount -t tmpfs -o size=SIZE tmpfs DIRECTORY` for the block; skips the test where
    mounting is not permitted (not root, no CAP_SYS_ADMIN, no mount binary)."""
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip("no mount command")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def fill(directory: Path, name: str = "filler") -> Path:
    """Fill the file system of `directory` to the last byte; the filler's path."""
    filler = directory / name
    with filler.open("wb", buffering=0) as handle:
        chunk = b"\0" * 65536
        while True:
            try:
                if handle.write(chunk) == 0:
                    break
            except OSError:
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    return filler

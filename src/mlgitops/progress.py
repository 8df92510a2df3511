"""Progress of long steps: one status line redrawn in place on a terminal.

`Progress` is silent in CI and in logs (CI logs keep only a stage's one-line summary; a person
at a terminal sees the search move). `StepLog`, for commands that run for minutes through many
steps, writes one line per step where it cannot redraw, so a log shows where the run is.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO


def interactive(stream: TextIO | None = None) -> bool:
    """True on a terminal outside CI (CI=true or any non-TTY stream is quiet)."""
    stream = sys.stderr if stream is None else stream
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Progress:
    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label, self.total = label, total
        self.stream = sys.stderr if stream is None else stream
        self.enabled = interactive(self.stream)
        self._width = 0
        self._done = 0

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        line = f"{self.label}: {done}/{self.total} {note}".rstrip()
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write("\r" + line + pad)
        self.stream.flush()

    def step(self, note: str = "") -> None:
        """One more of `total` steps done (never past it), named by `note`."""
        self._done = min(self._done + 1, self.total)
        self.update(self._done, note)

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


class StepLog:
    """Messages about a long command's steps: on a terminal one line redrawn in place, elsewhere
    (a log, CI) each message on a line of its own."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.redraw = interactive(self.stream)
        self._width = 0

    def __call__(self, note: str) -> None:
        line = f"{self.label}: {note}"
        if self.redraw:
            pad = " " * max(0, self._width - len(line))
            self._width = len(line)
            self.stream.write("\r" + line + pad)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.redraw and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()

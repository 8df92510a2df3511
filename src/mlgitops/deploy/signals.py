"""SIGTERM and SIGINT end a deploy cleanly instead of killing it mid-write.

`interruptible()` (the CLI wraps deploy and rollback in it) turns either signal into `Interrupted`,
raised in the main thread where the deploy runs; the deploy then records the attempt as
interrupted, releases its lease and exits 128 + the signal number. A signal that arrives inside
`critical()` (a history write, the lease release) is held until the section ends, so an entry is
never half-written or written twice; signals after the first are ignored while the deploy winds
down. Without `interruptible()` (the Python API), Ctrl-C's KeyboardInterrupt is handled alike.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT)


class Interrupted(BaseException):
    """A signal asked the deploy to stop (a BaseException, so `except Exception` passes it on)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def signal_of(stop: BaseException) -> int:
    """The signal behind an `Interrupted` or a KeyboardInterrupt."""
    return stop.signum if isinstance(stop, Interrupted) else int(signal.SIGINT)


class _Guard:
    def __init__(self) -> None:
        self.installed = False
        self.depth = 0
        self.pending: int | None = None
        self.fired = False

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.fired:
            return  # already winding down
        if self.depth:
            self.pending = signum
            return
        self.fired = True
        raise Interrupted(signum)


_guard = _Guard()


@contextmanager
def interruptible() -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT raise `Interrupted` (main thread only)."""
    if threading.current_thread() is not threading.main_thread() or _guard.installed:
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in HANDLED}
    _guard.installed, _guard.fired, _guard.pending, _guard.depth = True, False, None, 0
    for signum in HANDLED:
        signal.signal(signum, _guard.handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _guard.installed = False


@contextmanager
def critical() -> Iterator[None]:
    """Hold a signal that arrives inside the block until the block is done."""
    _guard.depth += 1
    try:
        yield
    finally:
        _guard.depth -= 1
        if not _guard.depth and _guard.pending is not None and not _guard.fired:
            signum, _guard.pending = _guard.pending, None
            _guard.fired = True
            raise Interrupted(signum)

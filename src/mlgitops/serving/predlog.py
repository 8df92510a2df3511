"""Append-only JSON-lines logs (predictions, feedback) written off the request path.

A request only appends one item to a bounded in-memory queue; a daemon thread wakes every
FLUSH_INTERVAL seconds, serialises what is queued and writes it in one call. When the queue is full
or the sink is broken, entries are dropped and counted, never waited for: a slow disk must not
slow predictions, and a full disk must not fail them.

The writer polls instead of being woken per item: waking a thread on every request costs more
than the request (each wake-up is a GIL hand-over on the one core a worker has).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import orjson

logger = logging.getLogger("mlgitops.serving")

FLUSH_INTERVAL = 0.05

Render = Callable[[Any], Iterable[bytes]]


class JsonLinesLog:
    """A bounded, non-blocking JSON-lines sink: "stdout", "off" or a file path."""

    def __init__(
        self,
        sink: str,
        capacity: int,
        render: Render | None = None,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        self.sink = sink
        self.capacity = capacity
        self._render = render or (lambda item: [orjson.dumps(item)])
        self._on_drop = on_drop
        # deque.append/popleft are atomic under the GIL: no lock on the request path.
        self._queue: deque[tuple[Any, int]] = deque()
        # Lines queued = _enqueued - _dequeued; each counter has one writing thread (the event
        # loop, the writer), so neither loses updates.
        self._enqueued = 0
        self._dequeued = 0
        self._stream: IO[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self.dropped = 0
        self.written = 0
        self.error: str | None = None
        # When the writer last kept up (wrote what was queued, or found nothing to write).
        self._kept_up = time.monotonic()

    @property
    def enabled(self) -> bool:
        return self.sink != "off"

    @property
    def pending(self) -> int:
        return self._enqueued - self._dequeued

    def stalled_for(self) -> float:
        """Seconds since the writer last kept up: it writes or finds nothing queued every
        FLUSH_INTERVAL, so more means it is stuck in a write or every write fails (or the sink
        never opened). 0 for a log that is off."""
        if not self.enabled:
            return 0.0
        return time.monotonic() - self._kept_up

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        try:
            if self.sink == "stdout":
                self._stream = sys.stdout.buffer
            else:
                path = Path(self.sink)
                path.parent.mkdir(parents=True, exist_ok=True)
                # Unbuffered: each flush is one write(2) of whole lines to an O_APPEND file, so
                # several workers appending to one file never interleave within a line.
                self._stream = path.open("ab", buffering=0)
        except OSError as error:
            # Serving goes on without the log; the drop counter and /metadata show it.
            self.error = f"cannot open {self.sink}: {error}"
            logger.error("log sink disabled: %s", self.error)
            return
        self._thread = threading.Thread(target=self._run, name=f"jsonl:{self.sink}", daemon=True)
        self._thread.start()

    def submit(self, item: Any, weight: int = 1) -> bool:
        """Queue one item (rendered to `weight` lines); False if it was dropped."""
        if not self.enabled:
            return True
        if self._thread is None or self._closed or self.pending + weight > self.capacity:
            self._drop(weight)
            return False
        self._enqueued += weight
        self._queue.append((item, weight))
        return True

    def _drop(self, weight: int) -> None:
        self.dropped += weight
        if self._on_drop is not None:
            self._on_drop(weight)

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        stream = self._stream
        assert stream is not None
        lines: list[bytes] = []
        taken = 0
        while self._queue:
            item, weight = self._queue.popleft()
            taken += weight
            try:
                lines.extend(self._render(item))
            except Exception as error:  # a bad entry must not kill the writer
                logger.error("log entry not serialisable: %s", error)
        self._dequeued += taken
        if not lines:
            self._kept_up = time.monotonic()
            return
        try:
            stream.write(b"\n".join(lines) + b"\n")
            stream.flush()
            self.written += len(lines)
            self._kept_up = time.monotonic()
        except (OSError, ValueError) as error:
            self.error = str(error)
            self._drop(len(lines))

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (waiting at most `timeout`) and stop the writer."""
        self._closed = True
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        if self._stream is not None and self.sink != "stdout":
            self._stream.close()

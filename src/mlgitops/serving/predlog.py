"""Append-only JSON-lines logs (predictions, feedback) written off the request path.

A request only puts one item on a bounded queue (`put_nowait`); a daemon thread serialises and
writes. When the queue is full or the sink is broken, entries are dropped and counted, never
waited for: a slow disk must not slow predictions, and a full disk must not fail them.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import orjson

logger = logging.getLogger("mlgitops.serving")

# Entries written per flush at most, so one huge backlog does not starve the flush.
_WRITE_CHUNK = 512

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
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=capacity)
        self._stream: IO[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped = 0
        self.written = 0
        self.error: str | None = None

    @property
    def enabled(self) -> bool:
        return self.sink != "off"

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        try:
            if self.sink == "stdout":
                self._stream = sys.stdout.buffer
            else:
                path = Path(self.sink)
                path.parent.mkdir(parents=True, exist_ok=True)
                self._stream = path.open("ab", buffering=1 << 16)
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
        if self._thread is None or self._closed:
            self._drop(weight)
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._drop(weight)
            return False
        return True

    def _drop(self, weight: int) -> None:
        self.dropped += weight
        if self._on_drop is not None:
            self._on_drop(weight)

    def _run(self) -> None:
        stream = self._stream
        assert stream is not None
        while True:
            item = self._queue.get()
            items = [item]
            while len(items) < _WRITE_CHUNK:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(i is _STOP for i in items)
            lines: list[bytes] = []
            for entry in items:
                if entry is _STOP:
                    continue
                try:
                    lines.extend(self._render(entry))
                except Exception as error:  # a bad entry must not kill the writer
                    logger.error("log entry not serialisable: %s", error)
            try:
                if lines:
                    stream.write(b"\n".join(lines) + b"\n")
                    stream.flush()
                    self.written += len(lines)
            except (OSError, ValueError) as error:
                self.error = str(error)
                self._drop(len(lines))
            if stop:
                return

    def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued (bounded by `timeout`) and stop the writer."""
        if self._thread is None or self._closed:
            self._closed = True
            return
        self._closed = True
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
        if self._stream is not None and self.sink != "stdout":
            self._stream.close()


_STOP = object()

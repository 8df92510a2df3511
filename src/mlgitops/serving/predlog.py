"""Append-only JSON-lines logs (predictions, feedback) written off the request path.

A request only appends one item to a bounded in-memory queue; a daemon thread wakes every
FLUSH_INTERVAL seconds, serialises what is queued and writes it. When the queue is full, entries
are dropped and counted, never waited for: a slow disk must not slow predictions, and a full
disk must not fail them.

Every line reaches the sink whole or is counted as dropped, never glued to another:
- a write is repeated until all its bytes are written (a short write is not an error);
- into a file, each flush holds an exclusive `flock` (every worker appending to the file takes
  it) and, when a write fails midway, the file is cut back to the last whole line it wrote;
- into a stream (stdout), which cannot be cut back, the next write starts with a newline when
  the last one stopped inside a line;
- lines that could not be written are kept and tried again at the next flush (as many as the
  queue holds), unless their submitter was waiting for the outcome (`on_done`: /feedback answers
  its client instead); a sink that fails is `failing_since` the first failure and `healthy`
  again after its next complete write. While a file sink fails with nothing to write, the writer
  probes it every PROBE_INTERVAL seconds (a page appended and cut off again), so it turns
  healthy by itself once space is free.

The writer polls instead of being woken per item: waking a thread on every request costs more
than the request (each wake-up is a GIL hand-over on the one core a worker has).
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson

logger = logging.getLogger("mlgitops.serving")

FLUSH_INTERVAL = 0.05
PROBE_INTERVAL = 1.0
# Bytes a probe appends (and cuts off again): a page, so a file system that can only fill the
# rest of its last page does not count as having space.
PROBE_BYTES = 4096

Render = Callable[[Any], Iterable[bytes]]
Done = Callable[[bool], None]


class _PartialWriteError(Exception):
    def __init__(self, error: OSError, written: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.written = written


class JsonLinesLog:
    """A bounded, non-blocking JSON-lines sink: "stdout", "off" or a file path."""

    def __init__(
        self,
        sink: str,
        capacity: int,
        render: Render | None = None,
        on_drop: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.capacity = capacity
        self._render = render or (lambda item: [orjson.dumps(item)])
        self._on_drop = on_drop
        self._clock = clock
        # deque.append/popleft are atomic under the GIL: no lock on the request path.
        self._queue: deque[tuple[Any, int, Done | None]] = deque()
        # Lines queued = _enqueued - _dequeued; each counter has one writing thread (the event
        # loop, the writer), so neither loses updates. _retained: lines kept for another try.
        self._enqueued = 0
        self._dequeued = 0
        self._retry: list[bytes] = []
        self._retained = 0
        self._fd: int | None = None
        self._is_file = False
        self._no_flock = False
        # A stream's last write stopped inside a line: the next one starts with a newline.
        self._mid_line = False
        self._last_probe = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        # Drops counted by the submitting thread and by the writer, apart: `+=` from two threads
        # on one attribute could lose an update.
        self._dropped_at_submit = 0
        self._dropped_by_writer = 0
        self.written = 0
        # The last write error, and (wall clock) when the current run of failures began; both
        # None once a write completes.
        self.error: str | None = None
        self.failing_since: float | None = None
        # (clock) When the writer last kept up: wrote all it had, or had nothing to write with
        # the sink not failing. Readiness reads it (stalled_for).
        self._kept_up = clock()

    @property
    def enabled(self) -> bool:
        return self.sink != "off"

    @property
    def healthy(self) -> bool:
        """Lines can be written: the sink is open (or off) and its last write completed."""
        if not self.enabled:
            return True
        return self._fd is not None and self.failing_since is None

    @property
    def dropped(self) -> int:
        return self._dropped_at_submit + self._dropped_by_writer

    @property
    def pending(self) -> int:
        """Lines accepted and not yet written or dropped."""
        return self._enqueued - self._dequeued + self._retained

    def stalled_for(self) -> float:
        """Seconds since the writer last kept up. It flushes every FLUSH_INTERVAL, so more
        means it is stuck in a write, its writes keep failing (a file failing with nothing to
        write counts until a probe succeeds), or the sink never opened. 0 for a log that is off."""
        if not self.enabled:
            return 0.0
        return self._clock() - self._kept_up

    def start(self) -> None:
        if not self.enabled or self._thread is not None:
            return
        try:
            if self.sink == "stdout":
                self._fd = sys.stdout.fileno()
            else:
                path = Path(self.sink)
                path.parent.mkdir(parents=True, exist_ok=True)
                # O_APPEND: several workers may append to one file (each flush under flock).
                # Read access too: a flush reads the last byte to know it starts a line.
                flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
                self._fd = os.open(path, flags, 0o644)
                self._is_file = stat.S_ISREG(os.fstat(self._fd).st_mode)
        except (OSError, ValueError) as error:
            # Serving goes on without the log; the drop counter and /metadata show it.
            self.error = f"cannot open {self.sink}: {error}"
            self.failing_since = time.time()
            logger.error("log sink disabled: %s", self.error)
            return
        self._thread = threading.Thread(target=self._run, name=f"jsonl:{self.sink}", daemon=True)
        self._thread.start()

    def submit(self, item: Any, weight: int = 1, on_done: Done | None = None) -> bool:
        """Queue one item (rendered to `weight` lines); False if it was dropped. `on_done`, if
        given, is called from the writer thread with whether all its lines were written; lines
        of such an item are not kept for another try."""
        if not self.enabled:
            return True
        if self._thread is None or self._closed or self.pending + weight > self.capacity:
            self._dropped_at_submit += weight
            if self._on_drop is not None:
                self._on_drop(weight)
            return False
        self._enqueued += weight
        self._queue.append((item, weight, on_done))
        return True

    def _drop(self, lines: int) -> None:
        """Count lines the writer gives up on."""
        if lines <= 0:
            return
        self._dropped_by_writer += lines
        if self._on_drop is not None:
            self._on_drop(lines)

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_INTERVAL):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        lines = self._retry
        retried = len(lines)
        self._retry = []
        # (first line, line count, on_done) of each item taken from the queue.
        owners: list[tuple[int, int, Done | None]] = []
        acknowledged: list[tuple[int, int]] = []
        taken = 0
        while self._queue:
            item, weight, on_done = self._queue.popleft()
            taken += weight
            try:
                rendered = list(self._render(item))
            except Exception as error:  # a bad entry must not kill the writer; it is counted
                logger.error("log entry not serialisable, dropped: %s", error)
                self._drop(weight)
                if on_done is not None:
                    on_done(False)
                continue
            owners.append((len(lines), len(rendered), on_done))
            if on_done is not None:
                acknowledged.append((len(lines), len(lines) + len(rendered)))
            lines.extend(rendered)
        # Retained before dequeued: `pending` may overcount for a moment, never undercount.
        self._retained = len(lines)
        self._dequeued += taken
        if not lines:
            self._retained = 0
            if self.failing_since is not None and self._is_file:
                self._probe()
            else:  # a stream cannot be probed: its next write tells
                self._kept_up = self._clock()
            return
        whole = self._write(lines)
        self.written += whole
        for first, count, on_done in owners:
            if on_done is not None:
                on_done(first + count <= whole)
        if whole == len(lines):
            self._retained = 0
            return
        # What was not written: lines someone waits on are dropped (they are told), the rest
        # is kept for the next flush as far as the queue's capacity goes.
        waited = bytearray(len(lines))
        for start, end in acknowledged:
            waited[start:end] = b"\x01" * (end - start)
        keep = [line for i, line in enumerate(lines) if i >= whole and not waited[i]]
        room = max(self.capacity - (self._enqueued - self._dequeued), 0)
        self._drop(len(lines) - whole - min(len(keep), room))
        self._retry = keep[:room]
        self._retained = len(self._retry)
        if retried and whole < retried:
            logger.debug("%d retained lines still not written", retried - whole)

    def _write(self, lines: list[bytes]) -> int:
        """Write `lines` (each without its newline); the number of them now whole in the sink,
        from the first. Never leaves a partial line for the next write to glue onto."""
        fd = self._fd
        assert fd is not None
        data = b"\n".join(lines) + b"\n"
        try:
            if self._is_file:
                whole = self._append_to_file(fd, data)
            else:
                whole = self._append_to_stream(fd, data)
        except OSError as error:  # flock or fstat themselves failed: nothing was written
            self._failed(error)
            return 0
        if whole == len(lines):
            self._succeeded()
        return whole

    def _append_to_file(self, fd: int, data: bytes) -> int:
        self._lock(fd)
        try:
            start = os.fstat(fd).st_size
            # A line cut off by something that did not hold the lock (a killed process): end it,
            # so ours start on a line of their own.
            prefix = b"\n" if start and os.pread(fd, 1, start - 1) != b"\n" else b""
            payload = prefix + data
            try:
                _write_all(fd, payload)
                return data.count(b"\n")
            except _PartialWriteError as failed:
                kept = payload.rfind(b"\n", 0, failed.written) + 1
                try:
                    os.ftruncate(fd, start + kept)
                except OSError as error:
                    logger.error("%s: cannot cut back a partial line: %s", self.sink, error)
                self._failed(failed.error)
                return max(payload.count(b"\n", 0, kept) - len(prefix), 0)
        finally:
            self._unlock(fd)

    def _lock(self, fd: int) -> None:
        """Take the file's lock; a file system without flock (some network ones) is written
        without it, as before the lock existed, and says so once."""
        if self._no_flock:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as error:
            self._no_flock = True
            logger.warning("%s: no flock (%s); workers sharing it may interleave", self.sink, error)

    def _unlock(self, fd: int) -> None:
        if not self._no_flock:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _append_to_stream(self, fd: int, data: bytes) -> int:
        prefix = b"\n" if self._mid_line else b""
        payload = prefix + data
        try:
            _write_all(fd, payload)
        except _PartialWriteError as failed:
            if failed.written:  # else unchanged: nothing of this write reached the stream
                self._mid_line = payload[failed.written - 1] != ord("\n")
            self._failed(failed.error)
            return max(payload.count(b"\n", 0, failed.written) - len(prefix), 0)
        self._mid_line = False
        return data.count(b"\n")

    def _probe(self) -> None:
        """While failing with nothing to write: append a page and cut it off again, under the
        lock; a probe that succeeds ends the failure."""
        now = self._clock()
        if now - self._last_probe < PROBE_INTERVAL:
            return
        self._last_probe = now
        fd = self._fd
        assert fd is not None
        try:
            self._lock(fd)
            try:
                start = os.fstat(fd).st_size
                try:
                    _write_all(fd, b"\n" * PROBE_BYTES)
                    ok = True
                except _PartialWriteError:
                    ok = False
                os.ftruncate(fd, start)
            finally:
                self._unlock(fd)
        except OSError:
            return
        if ok:
            self._succeeded()

    def _failed(self, error: OSError) -> None:
        self.error = f"{self.sink}: {error.strerror or error}"
        if self.failing_since is None:
            self.failing_since = time.time()
            logger.error("log sink failing, lines kept for another try or dropped: %s", self.error)

    def _succeeded(self) -> None:
        if self.failing_since is not None:
            logger.warning("log sink %s writable again", self.sink)
        self.error = None
        self.failing_since = None
        self._kept_up = self._clock()

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (waiting at most `timeout`) and stop the writer; what could not
        be written by then is counted as dropped."""
        self._closed = True
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            return  # still writing: the counters are the writer's to settle
        self._drop(len(self._retry))
        self._retry = []
        self._retained = 0
        if self._fd is not None and self.sink != "stdout":
            os.close(self._fd)
            self._fd = None


def _write_all(fd: int, data: bytes) -> None:
    """os.write until every byte is written; _PartialWriteError with how many were, on an error."""
    view = memoryview(data)
    done = 0
    while done < len(data):
        try:
            n = os.write(fd, view[done:])
        except OSError as error:
            raise _PartialWriteError(error, done) from None
        if n <= 0:
            raise _PartialWriteError(OSError(0, "write wrote nothing"), done)
        done += n

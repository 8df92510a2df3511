"""The JSON-lines log: bounded, never blocking, drops counted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mlgitops.serving.predlog import JsonLinesLog


def test_lines_reach_the_file_and_close_flushes(tmp_path: Path) -> None:
    sink = tmp_path / "logs" / "predictions.jsonl"
    log = JsonLinesLog(str(sink), capacity=100)
    log.start()
    for i in range(10):
        assert log.submit({"i": i})
    log.close()
    assert [json.loads(line)["i"] for line in sink.read_text().splitlines()] == list(range(10))
    assert log.written == 10
    assert log.dropped == 0


def test_full_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    dropped: list[int] = []
    log = JsonLinesLog(str(tmp_path / "p.jsonl"), capacity=5, on_drop=dropped.append)
    log.start()
    start = time.perf_counter()
    accepted = [log.submit({"i": i}, weight=2) for i in range(1000)]
    assert time.perf_counter() - start < 0.5
    assert accepted[:2] == [True, True]
    assert not all(accepted)
    assert log.dropped == sum(dropped) > 0
    log.close()


def test_unwritable_sink_disables_the_log_without_raising(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = JsonLinesLog(str(blocker / "sub" / "p.jsonl"), capacity=10)
    log.start()
    assert log.error is not None
    assert log.submit({"x": 1}) is False
    log.close()


def test_off_accepts_and_writes_nothing() -> None:
    log = JsonLinesLog("off", capacity=1)
    log.start()
    assert all(log.submit({"x": i}) for i in range(10))
    log.close()


def test_stdout_sink(capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    log = JsonLinesLog("stdout", capacity=10)
    log.start()
    log.submit({"x": 1})
    log.close()
    assert b'{"x":1}' in capfdbinary.readouterr().out


def test_unserialisable_entry_does_not_kill_the_writer(tmp_path: Path) -> None:
    sink = tmp_path / "p.jsonl"
    log = JsonLinesLog(str(sink), capacity=10)
    log.start()
    log.submit({"bad": object()})
    log.submit({"ok": 1})
    log.close()
    assert sink.read_text().splitlines() == ['{"ok":1}']


def test_stalled_for_grows_while_the_writer_is_stuck_and_resets_after(tmp_path: Path) -> None:
    import threading

    log = JsonLinesLog(str(tmp_path / "log.jsonl"), 100)
    gate = threading.Event()
    real_write = None

    class Stuck:
        """A stream whose write blocks until the gate opens (a pipe nobody reads)."""

        def write(self, data: bytes) -> int:
            gate.wait()
            return real_write(data)  # type: ignore[misc]

        def flush(self) -> None:
            pass

    log.start()
    assert log.stalled_for() < 1.0
    stream = log._stream
    real_write = stream.write  # type: ignore[union-attr]
    log._stream = Stuck()  # type: ignore[assignment]
    log.submit({"n": 1})
    time.sleep(0.5)
    assert log.stalled_for() >= 0.4
    gate.set()
    time.sleep(0.3)
    assert log.stalled_for() < 0.2
    log._stream = stream
    log.close()
    assert (tmp_path / "log.jsonl").read_bytes() == b'{"n":1}\n'


def test_a_log_that_is_off_never_stalls() -> None:
    assert JsonLinesLog("off", 10).stalled_for() == 0.0

"""The JSON-lines log: bounded, never blocking, drops counted."""

from __future__ import annotations

import errno
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mlgitops.serving import predlog
from mlgitops.serving.predlog import JsonLinesLog
from tests.support.tmpfs import fill, small_tmpfs


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


def test_unserialisable_entry_is_counted_as_dropped(tmp_path: Path) -> None:
    sink = tmp_path / "p.jsonl"
    dropped: list[int] = []
    log = JsonLinesLog(str(sink), capacity=10, on_drop=dropped.append)
    log.start()
    log.submit({"bad": object()})
    log.submit({"bad": "\ud800"})  # a lone surrogate: orjson cannot render it
    log.submit({"ok": 1})
    log.close()
    assert sink.read_text().splitlines() == ['{"ok":1}']
    assert (log.written, log.dropped, sum(dropped)) == (1, 2, 2)


def _lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the file parsed; fails on a cut or glued line."""
    raw = path.read_bytes()
    assert raw == b"" or raw.endswith(b"\n"), "the file ends inside a line"
    return [json.loads(line) for line in raw.splitlines()]


def _entry(i: int) -> dict[str, Any]:
    return {"i": i, "pad": "x" * 300}


def test_short_writes_are_repeated_until_the_line_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.write
    monkeypatch.setattr(predlog.os, "write", lambda fd, data: real(fd, bytes(data[:7])))
    sink = tmp_path / "p.jsonl"
    log = JsonLinesLog(str(sink), capacity=100)
    log.start()
    for i in range(20):
        log.submit(_entry(i))
    log.close()
    assert [line["i"] for line in _lines(sink)] == list(range(20))
    assert (log.written, log.dropped) == (20, 0)


class _FailAfter:
    """os.write that writes `budget` bytes in all, then fails with `error` until refilled."""

    def __init__(self, budget: int, error: int = errno.ENOSPC) -> None:
        self.budget = budget
        self.error = error
        self.real = os.write

    def __call__(self, fd: int, data: Any) -> int:
        if self.budget <= 0:
            raise OSError(self.error, os.strerror(self.error))
        n = self.real(fd, bytes(data[: self.budget]))
        self.budget -= n
        return n


def _wait(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_write_failing_midway_is_cut_back_and_kept_for_the_next_try(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = tmp_path / "p.jsonl"
    fake = _FailAfter(budget=1000)  # three whole lines and part of a fourth
    monkeypatch.setattr(predlog.os, "write", fake)
    log = JsonLinesLog(str(sink), capacity=100)
    log.start()
    for i in range(10):
        log.submit(_entry(i))
    _wait(lambda: log.failing_since is not None)
    # Only whole lines are on disk; the cut one was taken back, nothing is lost yet.
    assert [line["i"] for line in _lines(sink)] == [0, 1, 2]
    assert (log.written, log.dropped, log.pending) == (3, 0, 7)
    assert not log.healthy
    assert "No space left" in (log.error or "")
    fake.budget = 10**9  # space again
    _wait(lambda: log.healthy)
    log.submit(_entry(10))
    log.close()
    assert [line["i"] for line in _lines(sink)] == list(range(11))
    assert (log.written, log.dropped, log.error) == (11, 0, None)


def test_waited_for_lines_are_reported_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = tmp_path / "f.jsonl"
    fake = _FailAfter(budget=0)
    monkeypatch.setattr(predlog.os, "write", fake)
    log = JsonLinesLog(str(sink), capacity=100)
    log.start()
    outcomes: list[bool] = []
    done = threading.Event()
    assert log.submit({"label": 1}, on_done=lambda ok: (outcomes.append(ok), done.set()))
    assert done.wait(5)
    assert outcomes == [False]
    assert (log.written, log.dropped, log.pending) == (0, 1, 0)
    fake.budget = 10**9
    done.clear()
    assert log.submit({"label": 0}, on_done=lambda ok: (outcomes.append(ok), done.set()))
    assert done.wait(5)
    log.close()
    assert outcomes == [False, True]
    assert _lines(sink) == [{"label": 0}]


def test_a_stream_never_glues_the_line_after_a_failed_write(
    monkeypatch: pytest.MonkeyPatch, capfdbinary: pytest.CaptureFixture[bytes]
) -> None:
    fake = _FailAfter(budget=10, error=errno.EAGAIN)
    monkeypatch.setattr(predlog.os, "write", fake)
    log = JsonLinesLog("stdout", capacity=10)
    log.start()
    log.submit({"first": "x" * 40})
    _wait(lambda: log.failing_since is not None)
    fake.budget = 10**9
    log.submit({"second": 2})
    log.close()
    out = capfdbinary.readouterr().out.splitlines()
    # The cut line stands alone (readers count it as malformed); the next lines are whole.
    assert out[0] == b'{"first":"'
    assert [json.loads(line) for line in out[1:]] == [{"first": "x" * 40}, {"second": 2}]
    assert (log.written, log.dropped, log.healthy) == (2, 0, True)


def test_a_file_cut_by_another_process_gets_a_line_break_before_ours(tmp_path: Path) -> None:
    sink = tmp_path / "p.jsonl"
    sink.write_bytes(b'{"whole":1}\n{"cut":')
    log = JsonLinesLog(str(sink), capacity=10)
    log.start()
    log.submit({"ours": 1})
    log.close()
    assert sink.read_bytes().splitlines() == [b'{"whole":1}', b'{"cut":', b'{"ours":1}']


@pytest.mark.timeout(120)
def test_disk_full_on_a_small_tmpfs(tmp_path: Path) -> None:
    """Security review M2: on a full 1 MiB tmpfs, 900 lines were counted as written with 758 on
    disk, and the next line glued to the cut one. Now: every line on disk is whole, `written`
    is what is on disk, `dropped` the rest, and the sink writes again once space is freed."""
    with small_tmpfs(tmp_path / "fs", "1m") as fs:
        sink = fs / "predictions.jsonl"
        log = JsonLinesLog(str(sink), capacity=500)
        log.start()
        submitted = 0
        for i in range(300):
            submitted += log.submit(_entry(i))
        _wait(lambda: log.pending == 0)
        filler = fill(fs)
        for i in range(300, 1500):
            submitted += log.submit(_entry(i))
            if i % 100 == 0:
                time.sleep(0.06)  # several flushes, each failing on the full disk
        _wait(lambda: log.failing_since is not None)
        on_disk = _lines(sink)
        assert len(on_disk) == log.written
        assert log.written + log.dropped + log.pending == 1500
        assert log.dropped > 0
        assert not log.healthy
        filler.unlink()
        _wait(lambda: log.healthy)  # the kept lines are written without new traffic
        for i in range(1500, 1510):
            log.submit(_entry(i))
        log.close()
        lines = _lines(sink)  # no glued or cut line anywhere
        numbers = [line["i"] for line in lines]
        assert len(lines) == log.written
        assert log.written + log.dropped == 1500 + 10
        assert numbers == sorted(numbers)
        assert numbers[-10:] == list(range(1500, 1510))
        assert log.error is None
        assert log.failing_since is None


@pytest.mark.timeout(120)
def test_two_writers_on_a_full_tmpfs_keep_every_line_whole(tmp_path: Path) -> None:
    """Two workers appending to one file (each its own writer) while the disk fills up."""
    with small_tmpfs(tmp_path / "fs", "1m") as fs:
        sink = fs / "predictions.jsonl"
        logs = [JsonLinesLog(str(sink), capacity=200) for _ in range(2)]
        for log in logs:
            log.start()
        for i in range(4000):
            logs[i % 2].submit({"writer": i % 2, "i": i, "pad": "y" * (i % 500)})
            if i % 50 == 0:
                time.sleep(0.01)
        for log in logs:
            log.close()
        lines = _lines(sink)
        assert len(lines) == sum(log.written for log in logs)
        assert sum(log.written + log.dropped for log in logs) == 4000
        assert sum(log.dropped for log in logs) > 0


@pytest.mark.timeout(60)
def test_an_idle_failing_file_sink_turns_healthy_once_space_is_free(tmp_path: Path) -> None:
    clock = [0.0]
    with small_tmpfs(tmp_path / "fs", "1m") as fs:
        sink = fs / "feedback.jsonl"
        log = JsonLinesLog(str(sink), capacity=10, clock=lambda: clock[0])
        log.start()
        filler = fill(fs)
        done = threading.Event()
        log.submit({"label": 1, "pad": "z" * 8000}, on_done=lambda ok: done.set())
        assert done.wait(5)
        assert not log.healthy
        filler.unlink()
        time.sleep(0.2)
        assert not log.healthy  # no probe before PROBE_INTERVAL has passed
        clock[0] += predlog.PROBE_INTERVAL
        _wait(lambda: log.healthy)
        log.close()
        assert sink.read_bytes() == b""  # the probe leaves nothing behind


def test_stalled_for_grows_while_the_writer_is_stuck_and_resets_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that blocks (a pipe nobody reads, a hung network file system): readiness reads
    stalled_for, which grows until the write returns."""
    clock = [0.0]
    gate, entered = threading.Event(), threading.Event()
    real = os.write

    def stuck(fd: int, data: Any) -> int:
        entered.set()
        gate.wait()
        return real(fd, data)

    monkeypatch.setattr(predlog.os, "write", stuck)
    sink = tmp_path / "log.jsonl"
    log = JsonLinesLog(str(sink), 100, clock=lambda: clock[0])
    log.start()
    assert log.stalled_for() == 0.0
    log.submit({"n": 1})
    assert entered.wait(5)
    clock[0] += 30
    assert log.stalled_for() == 30
    gate.set()
    _wait(lambda: log.stalled_for() == 0.0)
    log.close()
    assert sink.read_bytes() == b'{"n":1}\n'


def test_stalled_for_grows_while_writes_fail_and_resets_once_they_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [0.0]
    fake = _FailAfter(budget=0)
    monkeypatch.setattr(predlog.os, "write", fake)
    log = JsonLinesLog(str(tmp_path / "p.jsonl"), capacity=100, clock=lambda: clock[0])
    log.start()
    log.submit(_entry(0))
    _wait(lambda: log.failing_since is not None)
    clock[0] += 12
    # Still failing: the kept line is tried at every flush, and none completes.
    time.sleep(0.2)
    assert log.stalled_for() == 12
    fake.budget = 10**9
    _wait(lambda: log.stalled_for() == 0.0)
    log.close()
    assert [line["i"] for line in _lines(tmp_path / "p.jsonl")] == [0]


def test_an_idle_healthy_log_and_a_log_that_is_off_never_stall(tmp_path: Path) -> None:
    clock = [0.0]
    log = JsonLinesLog(str(tmp_path / "p.jsonl"), 10, clock=lambda: clock[0])
    log.start()
    clock[0] += 100
    _wait(lambda: log.stalled_for() == 0.0)  # the next empty flush keeps up
    log.close()
    assert JsonLinesLog("off", 10).stalled_for() == 0.0


def test_a_sink_that_never_opened_stalls(tmp_path: Path) -> None:
    clock = [0.0]
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = JsonLinesLog(str(blocker / "p.jsonl"), 10, clock=lambda: clock[0])
    log.start()
    clock[0] += 11
    assert log.stalled_for() == 11

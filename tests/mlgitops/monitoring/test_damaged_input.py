"""Damaged and odd batch input: `mlgitops monitor` counts and reports cut lines, cut archives,
giant lines and lines without an event time, never crashes, and keeps memory bounded on a gzip
bomb. Each case asserts the exact lines the command prints."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from mlgitops.cli.main import main
from mlgitops.errors import MonitoringAlertError, MonitoringInputError
from mlgitops.monitoring.logs import MAX_LINE_BYTES, ReadStats, read_predictions
from mlgitops.profile import load_profile

NO_LABELS = (
    "monitor: note: no label source given (--labels): label coverage and realized performance "
    "are not checked"
)


def _monitor(release, logs, out: Path, capsys, *extra: str) -> tuple[int, str, str, dict]:
    argv = ["monitor", *map(str, logs if isinstance(logs, list) else [logs])]
    argv += ["--params", str(release.params_file)]
    argv += ["--summary", str(out / "summary.json"), "--report", str(out / "report.html")]
    capsys.readouterr()
    code = main([*argv, *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err, json.loads((out / "summary.json").read_text())


def _lines(release, tmp_path: Path, rows: int = 200, days: int = 1) -> list[bytes]:
    log, _ = release.traffic(tmp_path / "traffic", rows=rows, days=days)
    return log.read_bytes().splitlines()


def test_a_cut_last_line_is_counted_and_the_rest_read(release, tmp_path: Path, capsys):
    # The review's case: whole lines parse on the fast path, the cut one apart; the two halves
    # came out with their columns in different orders and the concatenation raised.
    lines = _lines(release, tmp_path)
    log = tmp_path / "cut.jsonl"
    log.write_bytes(b"\n".join(lines[:10]) + b"\n" + lines[10][:100])

    code, out, err, summary = _monitor(release, log, tmp_path, capsys)

    assert code == 0, err
    assert out == "monitor: ok: 10 predictions in 1 windows, no alerts\n"
    assert err.splitlines() == [
        "monitor: note: prediction logs: 1 malformed line skipped (1 cut last line)",
        NO_LABELS,
    ]
    assert summary["rows"] == 10
    assert summary["input"]["cut_lines"] == 1
    assert summary["input"]["malformed_examples"] == [
        f"{log}:11: last line cut short (no newline, not valid JSON)"
    ]
    assert "1 cut last line" in (tmp_path / "report.html").read_text()


def test_a_truncated_gzip_keeps_its_readable_prefix(release, tmp_path: Path, capsys):
    # Fewer rows than monitoring.min_rows: the half day kept would drift in `hour`.
    lines = _lines(release, tmp_path, rows=300)
    whole = gzip.compress(b"\n".join(lines) + b"\n", mtime=0)
    log = tmp_path / "cut.jsonl.gz"
    log.write_bytes(whole[: len(whole) // 2])
    readable = zlib.decompressobj(wbits=31).decompress(whole[: len(whole) // 2])
    whole_lines = readable.count(b"\n")

    code, out, err, summary = _monitor(release, log, tmp_path, capsys)

    assert code == 0, err
    assert summary["rows"] == whole_lines
    assert out == f"monitor: ok: {whole_lines} predictions in 1 windows, no alerts\n"
    assert err.splitlines() == [
        "monitor: note: prediction logs: 1 malformed line skipped (1 cut last line), 1 cut "
        f"archive (readable prefix read: {log}: ends early after {len(readable)} decompressed "
        "bytes)",
        NO_LABELS,
    ]
    assert summary["input"]["cut_archives"] == [
        f"{log}: ends early after {len(readable)} decompressed bytes"
    ]


def test_a_corrupt_gzip_member_keeps_what_came_before(release, tmp_path: Path, capsys):
    lines = _lines(release, tmp_path)
    first = gzip.compress(b"\n".join(lines[:50]) + b"\n", mtime=0)
    log = tmp_path / "two.jsonl.gz"
    log.write_bytes(first + b"\x1f\x8b\x08\x00garbage that is no deflate stream")

    code, _out, err, summary = _monitor(release, log, tmp_path, capsys)

    assert code == 0, err
    assert summary["rows"] == 50
    assert err.splitlines()[0].startswith(
        f"monitor: note: prediction logs: 1 cut archive (readable prefix read: {log}: corrupt after"
    )


def test_keys_in_any_order_read_the_same_on_both_paths(release, tmp_path: Path):
    lines = _lines(release, tmp_path)
    profile = load_profile(release.params.paths.profile)
    shuffle = random.Random(3)

    def shuffled(line: bytes) -> bytes:
        record = json.loads(line)
        items = list(record.items())
        shuffle.shuffle(items)
        features = list(record["features"].items())
        shuffle.shuffle(features)
        return json.dumps({k: (dict(features) if k == "features" else v) for k, v in items})

    plain, mixed = tmp_path / "plain.jsonl", tmp_path / "mixed.jsonl"
    plain.write_bytes(b"\n".join(lines) + b"\n")
    # A bad line sends the mixed file's block to the line-by-line path; a complete last line
    # without its newline is read apart.
    body = [shuffled(line).encode() for line in lines]
    mixed.write_bytes(b"\n".join([*body[:-1], b"{not json"]) + b"\n" + body[-1])

    expected = read_predictions([str(plain)], profile, ReadStats())
    stats = ReadStats()
    got = read_predictions([str(mixed)], profile, stats)

    assert stats.malformed == 1
    assert stats.cut_lines == 0
    assert list(got.columns) == list(expected.columns)
    assert got.equals(expected)


def test_a_giant_line_is_skipped_unread(release, tmp_path: Path, capsys):
    lines = _lines(release, tmp_path)
    giant = json.loads(lines[5])
    giant["features"]["country"] = "x" * (2 * MAX_LINE_BYTES)
    log = tmp_path / "giant.jsonl"
    log.write_bytes(b"\n".join([*lines[:5], json.dumps(giant).encode(), *lines[6:]]) + b"\n")

    code, _out, err, summary = _monitor(release, log, tmp_path, capsys)

    assert code == 0, err
    assert summary["rows"] == len(lines) - 1
    assert err.splitlines()[0] == (
        f"monitor: note: prediction logs: 1 malformed line skipped (1 line over {MAX_LINE_BYTES} "
        "bytes)"
    )
    assert summary["input"]["malformed_examples"] == [
        f"{log}:6: line longer than {MAX_LINE_BYTES} bytes (skipped unread)"
    ]


def _write_bomb(path: Path, size: int) -> None:
    """`size` bytes of zeros, gzip-compressed (about 1 MB for 1 GiB), without holding them."""
    encoder = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1 << 20)
    with path.open("wb") as handle:
        for _ in range(size // len(zeros)):
            handle.write(encoder.compress(zeros))
        handle.write(encoder.flush())


PEAK_RSS = """
import resource, sys
from mlgitops.cli.main import main
code = main(sys.argv[1:])
print(code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def _peak_rss_kib(release, log: Path, out: Path) -> tuple[int, int]:
    """(exit code, peak RSS in KiB) of `mlgitops monitor LOG` in a fresh process."""
    out.mkdir()
    argv = ["monitor", str(log), "--params", str(release.params_file)]
    argv += ["--summary", str(out / "summary.json"), "--report", str(out / "report.html")]
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *argv], capture_output=True, text=True, timeout=300
    )
    code, rss = proc.stderr.strip().splitlines()[-1].split()
    return int(code), int(rss)


@pytest.mark.timeout(600)
def test_a_gzip_bomb_stays_within_the_memory_bound(release, tmp_path: Path):
    # 1 GiB of zeros in about 1 MB: the review measured a 2.29 GB peak (the whole file read).
    bomb = tmp_path / "bomb.jsonl.gz"
    _write_bomb(bomb, 1 << 30)
    assert bomb.stat().st_size < 2 << 20
    small = tmp_path / "small.jsonl"
    small.write_bytes(b"\n".join(_lines(release, tmp_path, rows=50)) + b"\n")

    baseline_code, baseline = _peak_rss_kib(release, small, tmp_path / "small")
    code, peak = _peak_rss_kib(release, bomb, tmp_path / "bomb")

    assert baseline_code == 0
    # Unusable (no valid line), and within the documented bound: 64 MiB over reading a
    # 50-line log (docs/monitoring.md, "Damaged input").
    assert code == MonitoringInputError.exit_code
    print(f"peak RSS: 50-line log {baseline} KiB, 1 GiB gzip bomb {peak} KiB")
    assert peak - baseline < 64 * 1024, (baseline, peak)
    summary = json.loads((tmp_path / "bomb" / "summary.json").read_text())
    assert summary["error"] == (
        f"{bomb}: 1 lines read in 1 file, none a valid prediction (1 malformed; first: "
        f"{bomb}:1: line longer than {MAX_LINE_BYTES} bytes (skipped unread))"
    )


def test_a_record_without_event_time_makes_no_empty_windows(release, tmp_path: Path, capsys):
    # The review's case: five predictions, four dated 2025-01-01 by the record, one without
    # (its log time, almost two years later, stood in) gave 704 no_traffic alerts.
    lines = [json.loads(line) for line in _lines(release, tmp_path)[:5]]
    for hour, record in enumerate(lines[:4]):
        record["event_time"] = f"2025-01-01T{hour:02d}:00:00Z"
    del lines[4]["event_time"]
    lines[4]["time"] = "2026-12-05T10:00:00Z"
    log = tmp_path / "five.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in lines))

    code, out, err, summary = _monitor(release, log, tmp_path, capsys)

    assert code == 0, err
    assert out == "monitor: ok: 4 predictions in 1 windows, no alerts\n"
    assert err.splitlines() == [
        "monitor: note: 1 prediction without an event time left out of the windows (4 have one)",
        NO_LABELS,
    ]
    assert summary["rows_without_event_time"] == 1
    assert list(summary["windows"]) == ["2025-01-01"]
    assert summary["gaps"] == []


def test_a_gap_between_windows_is_one_finding(release, tmp_path: Path, capsys):
    lines = [json.loads(line) for line in _lines(release, tmp_path)[:6]]
    for record, day in zip(lines, ["01", "01", "01", "05", "05", "06"], strict=True):
        record["event_time"] = f"2025-01-{day}T12:00:00Z"
    log = tmp_path / "gap.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in lines))

    code, out, err, summary = _monitor(release, log, tmp_path, capsys)

    assert code == MonitoringAlertError.exit_code
    assert out == ""
    report = tmp_path / "report.html"
    assert err.splitlines() == [
        NO_LABELS,
        f"error: 1 alert (no_traffic x1); report in {report}",
    ]
    [alert] = summary["alerts"]
    assert alert["message"] == (
        "2025-01-02..2025-01-04: no predictions for 3 days (a gap between 2025-01-01 and "
        "2025-01-05)"
    )
    assert list(summary["windows"]) == ["2025-01-01", "2025-01-05", "2025-01-06"]
    assert summary["gaps"] == [
        {
            "first": "2025-01-02",
            "last": "2025-01-04",
            "start": "2025-01-02T00:00:00+00:00",
            "end": "2025-01-05T00:00:00+00:00",
            "windows": 3,
            "after": "2025-01-01",
            "before": "2025-01-05",
        }
    ]


def test_no_label_source_is_a_note_not_labels_late(release, tmp_path: Path, capsys):
    # label_delay traffic raises labels_late with its (late) labels; without any label source
    # there is nothing late, only nothing to check.
    log, labels = release.traffic(tmp_path, scenario="label_delay", rows=7000, days=7)
    late, _, _, with_labels = _monitor(release, log, tmp_path, capsys, "--labels", str(labels))
    assert late == MonitoringAlertError.exit_code
    assert "labels_late" in with_labels["alerts_by_kind"]

    code, out, err, summary = _monitor(release, log, tmp_path, capsys)

    assert code == 0, err
    assert out == "monitor: ok: 7000 predictions in 7 windows, no alerts\n"
    assert err.splitlines() == [NO_LABELS]
    assert summary["labels_given"] == 0
    assert "labels_late" not in summary["alerts_by_kind"]
    assert "no label source given" in (tmp_path / "report.html").read_text()


def test_a_compression_that_is_not_read_is_named(release, tmp_path: Path, capsys):
    import bz2

    log = tmp_path / "predictions.jsonl.bz2"
    log.write_bytes(bz2.compress(b"\n".join(_lines(release, tmp_path, rows=20)) + b"\n"))

    code, out, _err, summary = _monitor(release, log, tmp_path, capsys)

    assert code == MonitoringInputError.exit_code
    assert out == ""
    assert summary["error"] == (
        f"{log}: .bz2 compression is not read; decompress it or compress it with gzip"
    )


def test_label_files_in_any_column_order_read_alike_with_their_lines(tmp_path: Path):
    from mlgitops.monitoring.logs import Rejected, read_labels

    (tmp_path / "a.csv").write_text("id,label,label_time\ntx_1,1,2025-07-01\ntx_2,0,2025-07-01\n")
    (tmp_path / "b.csv").write_text("label_time,label,id\n2025-07-02,0,tx_3\n\n2025-07-02,x,tx_4\n")
    (tmp_path / "c.jsonl.gz").write_bytes(
        gzip.compress(b'{"label": 1, "id": "tx_5"}\n{"id": "tx_6", "label": 0}\n{"id": "tx_7"')
    )
    stats = ReadStats(rejected=[])

    frame = read_labels([str(tmp_path)], "is_fraud", None, stats)

    columns = (frame["key"], frame["label"], frame["source"], frame["line"])
    got = [(k, int(v), Path(s).name, n) for k, v, s, n in zip(*columns, strict=True)]
    assert got == [("tx_1", 1, "a.csv", 2), ("tx_2", 0, "a.csv", 3), ("tx_3", 0, "b.csv", 2),
                   ("tx_5", 1, "c.jsonl.gz", 1), ("tx_6", 0, "c.jsonl.gz", 2)]  # fmt: skip
    assert stats.rejected == [
        Rejected(str(tmp_path / "b.csv"), 4, "label 'x' is not 0 or 1", "tx_4", "x"),
        Rejected(
            str(tmp_path / "c.jsonl.gz"), 3, "last line cut short (no newline, not valid JSON)"
        ),
    ]
    assert stats.feedback_logs == []
    # A date without a time (pyarrow reads it as a date) is midnight UTC.
    assert str(frame["label_time"].iloc[0]) == "2025-07-01 00:00:00+00:00"

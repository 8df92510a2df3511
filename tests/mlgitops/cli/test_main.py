from __future__ import annotations

import subprocess
import sys

import pytest

from mlgitops.cli.main import main

SUBCOMMANDS = [
    [],
    ["data"],
    ["data", "generate"],
    ["data", "materialize"],
    ["stage"],
    ["stage", "validate"],
    ["stage", "split"],
    ["stage", "tune"],
    ["stage", "train"],
    ["stage", "evaluate"],
    ["stage", "gate"],
    ["stage", "package"],
    ["stage", "report"],
    ["report"],
    ["report", "show"],
    ["report", "pr"],
    ["summary"],
    ["serve"],
    ["deploy"],
    ["rollback"],
    ["history"],
    ["image"],
    ["image", "build"],
    ["image", "push"],
    ["audit"],
    ["audit", "sample"],
    ["audit", "import"],
    ["audit", "report"],
]


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage:" in out
    assert len(out.strip().splitlines()) > 3


def test_error_is_one_line_with_exit_code(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("paths: {}\ndata: 3\n")
    code = main(["stage", "validate"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: params.yaml: ")
    assert len(err.splitlines()) == 1


def test_missing_params_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["summary"]) == 2
    assert "params.yaml: file not found" in capsys.readouterr().err


def test_usage_error_exit_code(capsys):
    assert main(["no-such-command"]) == 2


def test_console_script_exit_code(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mlgitops", "stage", "train"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: params.yaml: file not found (run from the project root)"

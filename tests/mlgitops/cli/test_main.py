from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
import typer

from mlgitops import errors
from mlgitops.cli.exitcodes import phrase
from mlgitops.cli.main import app, main


def _command_paths(command: Any, path: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command and group of the CLI, as the argv that reaches it."""
    paths = [list(path)]
    # Groups have `commands` (typer ships its own click: no isinstance on click.Group).
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        paths += _command_paths(sub, (*path, name))
    return paths


# Taken from the app itself, so a new command cannot be left without help.
SUBCOMMANDS = _command_paths(typer.main.get_command(app))


@pytest.mark.parametrize("command", SUBCOMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help(command, capsys):
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Usage:" in out
    assert len(out.strip().splitlines()) > 3


def test_the_command_tree_is_complete():
    assert ["monitor"] in SUBCOMMANDS
    assert ["ab", "status"] in SUBCOMMANDS
    assert ["stage", "export"] in SUBCOMMANDS


# The exit codes each help text promises, stated by the error class that produces them.
PROMISED_CODES = {
    ("monitor",): [
        f"{errors.MonitoringAlertError.exit_code} when an alert fired",
        f"{errors.MonitoringInputError.exit_code} when the input is unusable",
    ],
    ("retrain",): [
        f"{errors.GateFailedError.exit_code} (FAIL)",
        f"{errors.GateInconclusiveError.exit_code} (INCONCLUSIVE)",
    ],
    ("report", "pr"): [
        f"{errors.GateFailedError.exit_code} on FAIL",
        f"{errors.GateInconclusiveError.exit_code} on INCONCLUSIVE",
        f"release exits {errors.ReleaseNotPassedError.exit_code}",
    ],
    ("deploy",): [
        phrase(cls)
        for cls in (
            errors.DeployError,
            errors.RolloutFailedError,
            errors.DeployLockedError,
            errors.GitError,
            errors.ReleaseNotPassedError,
            errors.DeployLeaseLostError,
            errors.ImageDigestError,
            errors.DeployInterruptedError,
        )
    ],
    ("ab", "status"): [
        f"{errors.ExperimentNoDifferenceYetError.exit_code} NO_DIFFERENCE_YET",
        f"{errors.ExperimentInsufficientDataError.exit_code} INSUFFICIENT_DATA",
        f"{errors.ExperimentChampionBetterError.exit_code} CHAMPION_BETTER",
        f"{errors.ExperimentGuardrailBreachedError.exit_code} GUARDRAIL_BREACHED",
        f"{errors.ExperimentSampleRatioMismatchError.exit_code} SRM",
        f"{errors.ExperimentError.exit_code} unusable input",
    ],
}


@pytest.mark.parametrize("command", sorted(PROMISED_CODES), ids=" ".join)
def test_help_states_the_exit_codes_the_errors_use(command, capsys):
    assert main([*command, "--help"]) == 0
    # Rich wraps and frames the text: compare words only.
    words = " ".join(re.sub(r"[│╭╮╰╯─]", " ", capsys.readouterr().out).split())
    for promise in PROMISED_CODES[command]:
        assert promise in words


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

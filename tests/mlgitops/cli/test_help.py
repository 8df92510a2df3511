"""Help reads as prose: paragraphs wrapped to the terminal (no docstring line breaks in the
middle of a sentence), flags shown as flags, and every group listing every subcommand by the
first sentence of its help."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
import typer

from mlgitops.cli.helptext import first_sentence
from mlgitops.cli.main import app, main

COLUMNS = 100
# Click's formatter fills lines up to the terminal width less two columns.
WIDTH = COLUMNS - 2


def _tree(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    for name, sub in getattr(command, "commands", {}).items():
        found += _tree(sub, (*path, name))
    return found


TREE = _tree(typer.main.get_command(app))
GROUPS = [(path, command) for path, command in TREE if getattr(command, "commands", None)]


def _help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*path, "--help"]) == 0
    return capsys.readouterr().out


def _blocks(text: str) -> list[list[str]]:
    """The help's paragraphs (runs of lines between blank lines), each as its lines."""
    blocks, current = [], []
    for line in text.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return [*blocks, current] if current else blocks


def _assert_filled(lines: list[str], indent: int) -> None:
    """Each line but the last is full: the next line's first word would not have fit on it."""
    for line, following in itertools.pairwise(lines):
        assert len(line) <= WIDTH, line
        next_word = following[indent:].split(" ", 1)[0]
        assert len(line) + 1 + len(next_word) > WIDTH, f"broken early:\n{line}\n{following}"


@pytest.fixture(autouse=True)
def _terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(COLUMNS))


@pytest.mark.parametrize("path", [path for path, _ in TREE], ids=lambda p: " ".join(p) or "-")
def test_paragraphs_wrap_and_flags_are_flags(path, capsys) -> None:
    text = _help(path, capsys)
    assert "<bool>" not in text
    # Prose paragraphs: the description and the exit codes (indented two spaces, no table).
    for block in _blocks(text):
        prose = block[0].startswith("  ") and not block[0].startswith("   ")
        table = any(re.match(r"^  \S.*\s{2,}\S", line) for line in block)
        if prose and not table and len(block) > 1:
            _assert_filled(block, indent=2)


@pytest.mark.parametrize("path", [path for path, _ in GROUPS], ids=lambda p: " ".join(p) or "-")
def test_every_group_lists_every_subcommand_by_its_first_sentence(path, capsys) -> None:
    [group] = [command for p, command in GROUPS if p == path]
    listing = _help(path, capsys).split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    entries: dict[str, str] = {}
    name = ""
    for line in listing.splitlines():
        match = re.match(r"^  (\S+)\s+(.*)$", line)
        if match:
            name, text = match.groups()
            entries[name] = text
        else:
            entries[name] += " " + line.strip()
    assert list(entries) == list(group.commands)
    for name, text in entries.items():
        expected = first_sentence(group.commands[name].help)
        assert text == expected, name
        # A whole sentence, not Click's cut ('...') nor a docstring's hard line break.
        assert text.endswith((".", ")")), text
        assert not text.endswith("..."), text


def test_data_help_names_all_it_does(capsys) -> None:
    text = _help(("data",), capsys)
    description = text.split("\n\n", 2)[1]
    for word in ("generate", "materialize", "ingest", "traffic"):
        assert word in description


def test_first_sentence() -> None:
    assert first_sentence(
        "Get the data of data.dvc: `dvc pull`, else\n regenerate it. Then more."
    ) == ("Get the data of data.dvc: `dvc pull`, else regenerate it.")
    assert first_sentence("One line only") == "One line only"
    assert first_sentence(None) == ""

"""Help that reads as prose: Click's plain formatter, which rewraps each docstring paragraph to
the terminal (Rich's kept the docstrings' hard line breaks and showed flags as `<bool>`), and a
command list whose line per command is the first sentence of its help."""

from __future__ import annotations

import inspect
import re
from typing import Any

import typer
from typer.core import TyperGroup

# A sentence ends at . ! or ? followed by a space and a capital letter, a backtick or a bracket
# (so `data.dvc`, `e.g.` inside a sentence and decimals do not end one).
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(\[])")


def first_sentence(help_text: str | None) -> str:
    """The first sentence of a help text's first paragraph, its lines joined."""
    text = inspect.cleandoc(help_text or "").partition("\f")[0]
    paragraph = text.split("\n\n", 1)[0].replace("\b\n", "")
    joined = " ".join(paragraph.split())
    return _SENTENCE_END.split(joined, maxsplit=1)[0]


class Group(TyperGroup):
    """A command group listing each command by the first sentence of its help, whole: Click
    would cut it at the column width with '...'; the help formatter wraps it instead."""

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is None or command.hidden:
                continue
            rows.append((name, command.short_help or first_sentence(command.help)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def app(**settings: Any) -> typer.Typer:
    """A Typer app with this help: plain Click formatting, first sentences in command lists."""
    # Up to 100 columns where the terminal has them (Click's default stops at 80).
    settings.setdefault("context_settings", {}).setdefault("max_content_width", 100)
    return typer.Typer(cls=Group, rich_markup_mode=None, **settings)

"""The README's code blocks, for tests that run its commands as written."""

from __future__ import annotations

import re

from tests.support.project import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def readme_blocks(heading: str) -> list[str]:
    """The fenced code blocks of the README section under `heading` (up to the next `## `)."""
    section = README.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```[a-z]*\n(.*?)^```", section, flags=re.S | re.M)

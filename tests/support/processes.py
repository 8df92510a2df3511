"""Process trees on Linux, for stopping servers whose workers leave the process group."""

from __future__ import annotations

from pathlib import Path


def descendants(root: int) -> list[int]:
    """Every live descendant of `root`, read from /proc (BentoML workers call setsid)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found

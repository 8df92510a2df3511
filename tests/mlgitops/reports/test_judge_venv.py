"""Which venv the trusted judge runs the base's code in: the running one only when it has every
pin of the base's lock; else one made from that lock, by hash, and kept."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from mlgitops.errors import JudgeError
from mlgitops.reports import judge
from tests.support.project import REPO_ROOT

LOCK = (REPO_ROOT / "requirements.lock").read_text()


def test_the_lock_pins_are_read_with_canonical_names():
    pins = judge.lock_pins(LOCK)
    assert pins["scikit-learn"]
    assert len(pins) == LOCK.count("==")
    assert judge.lock_pins("Foo_Bar.baz==1.2 \\\n    --hash=sha256:00\n") == {"foo-bar-baz": "1.2"}


def test_the_running_venv_is_reused_when_it_has_every_pin(tmp_path):
    (tmp_path / "requirements.lock").write_text(LOCK)
    said: list[str] = []
    assert judge.base_venv(tmp_path, said.append) == Path(sys.executable)
    digest = hashlib.sha256(LOCK.encode()).hexdigest()
    assert said == [
        f"judge: the base's requirements.lock (sha256 {digest[:16]}) is what the running venv "
        f"has installed (every pin): reusing {sys.prefix}"
    ]


def test_another_lock_gets_its_own_venv_made_from_it(tmp_path, monkeypatch):
    pins = judge.lock_pins(LOCK)
    other = LOCK.replace(f"scikit-learn=={pins['scikit-learn']}", "scikit-learn==0.0.1")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "requirements.lock").write_text(other)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ran: list[list[str]] = []

    def fake_run(cmd, **_):
        ran.append([str(c) for c in cmd])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(judge.subprocess, "run", fake_run)
    said: list[str] = []
    python = judge.base_venv(tmp_path / "base", said.append)
    digest = hashlib.sha256(other.encode()).hexdigest()
    venv = tmp_path / "cache" / "mlgitops" / "judge-venvs" / digest[:32]
    assert python == venv / "bin" / "python"
    assert "lacks 1 pins of the base's requirements.lock (e.g. scikit-learn==0.0.1)" in said[0]
    assert ran[0] == [sys.executable, "-m", "venv", str(venv)]
    assert "--require-hashes" in ran[1]
    assert ran[1][-1] == str(tmp_path / "base" / "requirements.lock")
    # Made once: the next judge with this lock reuses it.
    ran.clear()
    assert judge.base_venv(tmp_path / "base", said.append) == python
    assert ran == []
    assert said[-1].startswith("judge: reusing the venv of the base's requirements.lock")


def test_a_failed_venv_is_one_line_and_not_kept(tmp_path, monkeypatch):
    (tmp_path / "requirements.lock").write_text("nothing-installed==9.9 \\\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(
        judge.subprocess,
        "run",
        lambda cmd, **_: subprocess.CompletedProcess(cmd, 1, "", "x\nno matching distribution"),
    )
    with pytest.raises(JudgeError, match="^making the base's venv failed .*no matching"):
        judge.base_venv(tmp_path, lambda line: None)
    assert not list((tmp_path / "cache").rglob(".installed"))


def test_a_base_without_a_lock_cannot_be_judged_from(tmp_path):
    with pytest.raises(JudgeError, match="the base has no requirements.lock"):
        judge.base_venv(tmp_path, lambda line: None)

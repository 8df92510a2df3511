"""The served API against its own OpenAPI document (issue 19 item 6): schemathesis, every check,
a bounded run (fixed examples per operation and seed, a time limit) finds nothing.

The command is the one a person would run against `mlgitops serve`:

    schemathesis --config-file tests/mlgitops/serving/schemathesis.toml run \\
        http://127.0.0.1:3000/openapi.json --checks all --max-examples 50 --seed 1 --workers 1
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mlgitops.serving.conftest import LiveServer

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 50
SEED = 1
TIME_LIMIT = 300


@pytest.fixture
def api_headers() -> dict[str, str]:
    """Headers every request carries (credentials, where the API asks for them)."""
    return {}


@pytest.mark.slow
@pytest.mark.timeout(TIME_LIMIT + 60)
def test_schemathesis_finds_nothing(
    live_server: LiveServer, api_headers: dict[str, str], tmp_path: Path
) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(CONFIG),
        "run", f"{live_server.url}/openapi.json",
        "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--request-timeout", "30",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    for name, value in api_headers.items():
        command += ["--header", f"{name}: {value}"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=TIME_LIMIT, cwd=tmp_path, check=False
    )
    output = done.stdout + done.stderr
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert done.returncode == 0, output[-6000:]
    assert counts is not None, output[-3000:]
    generated, passed = map(int, counts.groups())
    print(f"\nschemathesis: {generated} cases generated, {passed} passed")
    # Every operation of the document was tested, with a few hundred cases in all.
    assert "Tested: 4" in output, output[-3000:]
    assert generated == passed >= 200

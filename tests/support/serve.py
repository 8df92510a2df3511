"""`mlgitops serve` started by a test: its output kept in a file, shown when it does not come up."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.mlgitops.serving.conftest import stop_server, wait_for
from tests.support.ports import free_port

# free_port() closes its socket before the server binds, so another test's server may take the
# port in between; only that race is retried, any other failure is reported at once.
PORT_TAKEN = "Address already in use"
ATTEMPTS = 3


def _tail(log: Path, lines: int = 30) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def mlgitops_serve(
    extra: list[str], *, cwd: Path, env: Mapping[str, str], log: Path, timeout: float = 180
) -> Iterator[str]:
    """Yields the URL of a ready `mlgitops serve` (its /readyz said 200); stops it afterwards.
    Fails with the last lines of the server's output when it exits or does not get ready."""
    for attempt in range(ATTEMPTS):
        port = free_port()
        with log.open("w") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "mlgitops", "serve", "--port", str(port), *extra],
                cwd=cwd, env=dict(env), start_new_session=True,
                stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            url = f"http://127.0.0.1:{port}"
            if wait_for(f"{url}/readyz", 200, timeout, process):
                yield url
                return
            tail = _tail(log)
            if PORT_TAKEN in tail and attempt + 1 < ATTEMPTS:
                continue
            raise AssertionError(
                f"mlgitops serve (exit {process.poll()}) not ready in {timeout} s; "
                f"its last output:\n{tail}"
            )
        finally:
            stop_server(process)

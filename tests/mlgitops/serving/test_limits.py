"""The security review's HTTP attacks (issue 19) against a real server with small limits: each
stays within its bound, is answered as documented, and /livez and /readyz answer throughout.

The limits are injected small (MLGITOPS_* settings) so each attack takes seconds; the review's
scale, with the default limits, is benchmarks/serving_attacks.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlgitops.profile import load_profile
from mlgitops.serving.model import probe_records
from tests.mlgitops.serving.conftest import LiveServer, Packaged, run_server, wait_for
from tests.support import attacks

POD_LIMIT = 2**30
MIB = 2**20
MAX_BATCH = 1000
# As app.py computes it: the largest body /predict reads at this batch size.
MAX_BODY = 65536 + MAX_BATCH * 4096
LIMITS = {
    "MLGITOPS_MAX_BATCH_SIZE": str(MAX_BATCH),
    "MLGITOPS_MAX_HEADER_BYTES": "4096",
    "MLGITOPS_HEADER_TIMEOUT_SECONDS": "1.5",
    "MLGITOPS_BODY_TIMEOUT_SECONDS": "2",
    "MLGITOPS_MAX_CONNECTIONS": "64",
    "MLGITOPS_MAX_IN_FLIGHT": "4",
    "MLGITOPS_RETRY_AFTER_SECONDS": "3",
    "MLGITOPS_MAX_ID_LENGTH": "64",
}
# The sweep looks every quarter of the shortest timeout; a loaded test machine adds some more.
MARGIN = 2.0


@pytest.fixture(scope="module")
def limited(packaged: Packaged, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with run_server(packaged, tmp_path_factory.mktemp("limited"), LIMITS) as server:
        if not wait_for(f"{server.url}/readyz", 200, 90, server.process):
            raise RuntimeError(f"server not ready:\n{server.log_file.read_text()[-3000:]}")
        yield server


def _port(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _watched(server: LiveServer, attack: object) -> tuple[object, attacks.Watch, int]:
    """Run `attack` against `server` while watching its worker: (result, watch, RSS before)."""
    (worker,) = attacks.worker_pids(server.process.pid)
    before = attacks.process_rss(worker)
    watch = attacks.Watch("127.0.0.1", _port(server), lambda: attacks.process_rss(worker))
    result = asyncio.run(attacks.watched(watch, attack))  # type: ignore[arg-type]
    return result, watch, before


def _rejected(server: LiveServer, code: str) -> float:
    """mlgitops_requests_rejected_total{code=...} of the server's /metrics (0 before any)."""
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    pattern = rf'^mlgitops_requests_rejected_total\{{[^}}]*code="{code}"[^}}]*\}} (\S+)$'
    return sum(float(m.group(1)) for m in re.finditer(pattern, text, re.MULTILINE))


def _assert_healthy(watch: attacks.Watch) -> None:
    assert len(watch.probes) >= 4
    assert watch.failed_probes() == [], watch.failed_probes()
    assert watch.peak_rss < POD_LIMIT


def test_slow_bodies_are_capped_in_flight_and_timed_out(limited: LiveServer) -> None:
    # 40 connections each hold a body of the largest size /predict reads, minus 10 bytes.
    attack = attacks.slow_bodies("127.0.0.1", _port(limited), 40, MAX_BODY, hold=10)
    outcome, watch, before = _watched(limited, attack)
    assert isinstance(outcome, attacks.Outcome)
    counts = outcome.counts
    # At most four are read (max_in_flight; a probe in progress takes a place too) and answered
    # 408 once the body timeout passes; the rest are refused at once with 503 and Retry-After,
    # which those still sending read as long as no more than four linger (the others are
    # closed at once: a flood of refused clients does not keep the worker reading).
    assert 1 <= counts["408"] <= 4, counts
    assert counts["503"] >= 4, counts
    assert counts["408"] + counts["503"] + counts["closed"] == 40, counts
    assert max(outcome.seconds("408")) < 2 + MARGIN
    # (Counted from the last byte sent; the server counts from the end of the head.)
    assert min(outcome.seconds("408")) >= 1.0
    refused = [head for head in outcome.heads if head.startswith(b"http/1.1 503")]
    assert refused
    assert all(b"retry-after: 3\r\n" in head for head in refused)
    assert all(b"connection: close\r\n" in head for head in outcome.heads)
    _assert_healthy(watch)
    # Held bodies: at most max_in_flight of them (40 would be 160 MiB).
    assert watch.peak_rss - before < 4 * MAX_BODY * 2 + 24 * MIB, (before, watch.peak_rss)


def test_unfinished_headers_are_cut_at_the_header_limit(limited: LiveServer) -> None:
    # 20 connections each sending a header of 8 MiB without its end (160 MiB unbounded).
    refused_before = _rejected(limited, "header_too_large")
    attack = attacks.unfinished_headers("127.0.0.1", _port(limited), 20, 8 * MIB, hold=10)
    outcome, watch, before = _watched(limited, attack)
    assert isinstance(outcome, attacks.Outcome)
    # Every one is refused with 431 once past the limit. A client still sending reads it while
    # its connection lingers (at most max_in_flight linger, each up to the largest body: less
    # than the 8 MiB it sends); the others are closed at once, so it may see only the close.
    assert outcome.counts["431"] + outcome.counts["closed"] == 20, outcome.counts
    assert _rejected(limited, "header_too_large") - refused_before == 20
    # Refused as soon as the limit is passed, not at the header timeout.
    assert max(outcome.seconds("431"), default=0.0) < 1.5
    _assert_healthy(watch)
    assert watch.peak_rss - before < 24 * MIB, (before, watch.peak_rss)


def test_a_complete_head_over_the_limit_is_refused(limited: LiveServer) -> None:
    # On a kept-alive connection, after a request that was answered, too.
    with httpx.Client(base_url=limited.url) as client:
        assert client.get("/metadata", headers={"x-pad": "a" * 3000}).status_code == 200
        response = client.get("/metadata", headers={"x-pad": "a" * 5000})
        assert response.status_code == 431
        assert response.headers["connection"] == "close"
        assert response.json()["error"] == "header_too_large"
        assert client.get("/metadata").status_code == 200


def test_short_bodies_are_dropped_after_the_body_timeout(limited: LiveServer) -> None:
    attack = attacks.short_bodies("127.0.0.1", _port(limited), 4, 1000, 500, hold=15)
    outcome, watch, _ = _watched(limited, attack)
    assert isinstance(outcome, attacks.Outcome)
    assert outcome.counts["408"] == 4, outcome.counts
    # (Counted from the last byte sent; the server counts from the end of the head.)
    assert min(outcome.seconds("408")) >= 1.0
    assert max(outcome.seconds("408")) < 2 + MARGIN
    body = outcome.heads[0]
    assert b"connection: close" in body
    _assert_healthy(watch)


def test_slow_heads_are_timed_out(limited: LiveServer) -> None:
    # Slow loris: a head that never ends, a byte at a time, and a connection that sends nothing.
    async def attack() -> tuple[attacks.Outcome, attacks.Outcome]:
        port = _port(limited)
        return await asyncio.gather(
            attacks.connection_flood("127.0.0.1", port, 4, hold=10, partial=b"GET /meta"),
            attacks.connection_flood("127.0.0.1", port, 4, hold=10, partial=b""),
        )

    (partial, silent), watch, _ = _watched(limited, attack())  # type: ignore[misc]
    assert partial.counts["408"] == 4, partial.counts
    assert max(partial.seconds("408")) < 1.5 + MARGIN
    assert silent.counts["closed"] == 4, silent.counts
    assert max(silent.seconds("closed")) < 1.5 + MARGIN
    _assert_healthy(watch)


def test_a_connection_flood_closes_idle_connections_not_the_probes(limited: LiveServer) -> None:
    (worker,) = attacks.worker_pids(limited.process.pid)
    open_counts: list[int] = []
    stop = threading.Event()

    def count_connections() -> None:
        import psutil

        process = psutil.Process(worker)
        while not stop.wait(0.2):
            established = [c for c in process.net_connections() if c.status == "ESTABLISHED"]
            open_counts.append(len(established))

    counter = threading.Thread(target=count_connections)
    counter.start()
    try:
        # 300 connections that start a request and stop; the cap is 64.
        attack = attacks.connection_flood("127.0.0.1", _port(limited), 300, hold=8)
        outcome, watch, _ = _watched(limited, attack)
    finally:
        stop.set()
        counter.join()
    assert isinstance(outcome, attacks.Outcome)
    # Each newcomer past the cap closed the longest-idle one; the last 64 timed out (408).
    assert outcome.counts["closed"] + outcome.counts["408"] == 300, outcome.counts
    assert outcome.counts["closed"] >= 300 - 64
    # (A newcomer is counted before the connection it replaces is gone.)
    assert max(open_counts) <= 64 + 2, open_counts
    _assert_healthy(watch)


def _record(packaged: Packaged) -> dict[str, object]:
    return probe_records(load_profile(packaged.artifacts.profile_file), 1, seed=3)[0]


def test_long_ids_are_refused_and_memory_stays_flat(
    limited: LiveServer, packaged: Packaged
) -> None:
    record = _record(packaged)
    too_long = attacks.long_id_bodies(record, "transaction_id", 1000, 3700, 1)[0]
    response = httpx.post(f"{limited.url}/predict", content=too_long, timeout=30)
    assert response.status_code == 422
    error = response.json()["detail"][0]
    assert error == {
        "code": "too_long",
        "message": "transaction_id is 3700 characters long; at most 64 are accepted",
        "row": 0,
        "field": "transaction_id",
    }
    # The review's attack at a tenth: 12 requests of 1000 rows with 3.7 KB ids.
    bodies = attacks.long_id_bodies(record, "transaction_id", 1000, 3700, 12)
    statuses, watch, before = _watched(
        limited, attacks.post_bodies("127.0.0.1", _port(limited), bodies, connections=2)
    )
    assert statuses == {"422": 12}
    _assert_healthy(watch)
    after = attacks.process_rss(attacks.worker_pids(limited.process.pid)[0])
    assert after - before < 32 * MIB, (before, after)
    # At the cap, the ids are served and echoed.
    fitting = attacks.long_id_bodies(record, "transaction_id", 3, 64, 1)[0]
    response = httpx.post(f"{limited.url}/predict", content=fitting, timeout=30)
    assert response.status_code == 200
    assert [len(p["id"]) for p in response.json()["predictions"]] == [64, 64, 64]


def test_feedback_ids_are_capped(limited: LiveServer) -> None:
    body = {"request_id": "r", "label": 1, "id": "x" * 65}
    response = httpx.post(f"{limited.url}/feedback", json=body, headers=limited.feedback_auth())
    assert response.status_code == 422
    assert response.json()["detail"][0]["code"] == "too_long"
    assert response.json()["detail"][0]["field"] == "id"


def test_the_limits_are_in_the_openapi_document(limited: LiveServer) -> None:
    document = httpx.get(f"{limited.url}/openapi.json").json()
    predict = document["paths"]["/predict"]["post"]
    record = predict["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "records"
    ]["items"]
    assert record["properties"]["transaction_id"]["maxLength"] == 64
    assert {"408", "431", "503"} <= set(predict["responses"])


# --- /readyz while a log is wedged


@pytest.fixture
def fifo_server(packaged: Packaged, tmp_path: Path) -> Iterator[tuple[LiveServer, int]]:
    """A server whose prediction log is a pipe that the test reads only when it wants to."""
    fifo = tmp_path / "wedge" / "predictions.jsonl"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    env = {"MLGITOPS_PREDICTION_LOG": str(fifo), "MLGITOPS_LOG_STALL_SECONDS": "1"}
    try:
        with run_server(packaged, tmp_path / "server", env) as server:
            if not wait_for(f"{server.url}/readyz", 200, 90, server.process):
                raise RuntimeError(f"server not ready:\n{server.log_file.read_text()[-3000:]}")
            yield server, reader
    finally:
        os.close(reader)


def _drain(reader: int) -> int:
    total = 0
    while True:
        try:
            chunk = os.read(reader, 1 << 16)
        except BlockingIOError:
            return total
        if not chunk:
            return total
        total += len(chunk)


def _readyz_becomes(url: str, status: int, timeout: float, reader: int | None = None) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if reader is not None:
            _drain(reader)
        if httpx.get(f"{url}/readyz", timeout=2).status_code == status:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"/readyz did not answer {status} within {timeout} s")


def test_readyz_is_false_while_the_log_is_wedged_and_true_once_it_recovers(
    fifo_server: tuple[LiveServer, int], packaged: Packaged
) -> None:
    server, reader = fifo_server
    record = _record(packaged)
    batch = json.dumps({"records": [record] * 50}).encode()
    # Nobody reads the pipe: its 64 KiB fill up and the writer blocks in write(2).
    for _ in range(20):
        assert httpx.post(f"{server.url}/predict", content=batch, timeout=30).status_code == 200
    _readyz_becomes(server.url, 503, timeout=10)
    # Predictions are still answered (their lines wait or are dropped and counted).
    assert httpx.post(f"{server.url}/predict", content=batch, timeout=30).status_code == 200
    assert httpx.get(f"{server.url}/livez").status_code == 200
    # The reader catches up: the writer moves again and the pod turns ready.
    _readyz_becomes(server.url, 200, timeout=10, reader=reader)
    assert httpx.get(f"{server.url}/readyz").status_code == 200


# --- settings


def test_the_limits_are_settings_with_safe_defaults() -> None:
    from mlgitops.config import ServingConfig
    from mlgitops.errors import ServingError

    settings = ServingConfig.from_env({})
    assert (settings.limits, settings.max_header_bytes, settings.max_in_flight) == (True, 16384, 32)
    assert settings.max_connections > settings.max_in_flight
    with pytest.raises(ServingError, match=r"max_connections \(16\) must be larger than max_in"):
        ServingConfig.from_env({"MLGITOPS_MAX_CONNECTIONS": "16", "MLGITOPS_MAX_IN_FLIGHT": "16"})
    with pytest.raises(ServingError, match="MLGITOPS_BODY_TIMEOUT_SECONDS='0'"):
        ServingConfig.from_env({"MLGITOPS_BODY_TIMEOUT_SECONDS": "0"})


def test_limits_off_leaves_uvicorn_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn.config

    from mlgitops.config import ServingConfig
    from mlgitops.serving.limits import LimitedHttpToolsProtocol, install

    protocols = dict(uvicorn.config.HTTP_PROTOCOLS)
    monkeypatch.setattr(uvicorn.config, "HTTP_PROTOCOLS", protocols)
    assert install(ServingConfig(limits=False)) is False
    assert protocols["auto"] == "uvicorn.protocols.http.auto:AutoHTTPProtocol"
    assert install(ServingConfig(max_in_flight=7)) is True
    assert protocols["auto"] == "mlgitops.serving.limits:LimitedHttpToolsProtocol"
    assert LimitedHttpToolsProtocol.limits.max_in_flight == 7


def test_the_readmes_limits_table_states_the_defaults() -> None:
    import re

    from mlgitops.config import ServingConfig
    from tests.support.readme import README

    limits = README.split("\n### Limits\n", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| ([^|]+) \|", limits, flags=re.M)
    stated = {name: value.strip() for name, value in rows}
    defaults = ServingConfig.model_fields
    limit_fields = {
        "limits", "max_header_bytes", "header_timeout_seconds", "body_timeout_seconds",
        "keepalive_timeout_seconds", "max_connections", "max_in_flight", "retry_after_seconds",
        "max_id_length", "max_string_length", "feedback_join_bytes", "log_stall_seconds",
    }  # fmt: skip
    assert set(stated) == limit_fields
    for name, value in stated.items():
        default = defaults[name].default
        expected = str(default).lower() if isinstance(default, bool) else str(default)
        assert value == expected, name

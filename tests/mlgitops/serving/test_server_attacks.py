"""The attacks of the security review (issue 19) against the real server: forged and replayed
labels, a repeated X-Request-ID, lone surrogates, a full disk. Each asserts the refusal or the
bound, and that the health checks still answer."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlgitops.monitoring import metric_names as names
from mlgitops.serving.auth import RequestIds, SecretFile
from mlgitops.serving.model import probe_records
from tests.mlgitops.serving.conftest import MAX_BATCH, LiveServer, Packaged, run_server, wait_for
from tests.support.tmpfs import fill, small_tmpfs

pytestmark = pytest.mark.timeout(300)

OUTCOMES = ("tp", "fp", "tn", "fn")


@pytest.fixture(scope="module")
def records(packaged: Packaged) -> list[dict[str, Any]]:
    from mlgitops.profile import load_profile

    rows = probe_records(load_profile(packaged.artifacts.profile_file), 200, seed=19)
    return [{k: v for k, v in r.items() if v is not None} for r in rows]


def _counter(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`, in a /metrics page."""
    total = 0.0
    for match in re.finditer(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", text, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.items() <= found.items():
            total += float(match.group(2))
    return total


def _outcomes(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {o: _counter(text, names.LABELLED_OUTCOME_TOTAL, outcome=o) for o in OUTCOMES}


def _assert_healthy(url: str) -> None:
    assert httpx.get(f"{url}/livez", timeout=10).status_code == 200
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200


def _lines(path: Path) -> list[dict[str, Any]]:
    raw = path.read_bytes() if path.exists() else b""
    assert raw == b"" or raw.endswith(b"\n"), f"{path} ends inside a line"
    return [json.loads(line) for line in raw.splitlines()]


def _settled(url: str, log: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """/metadata's state of `log` once nothing is pending."""
    deadline = time.monotonic() + 15
    while True:
        state = httpx.get(f"{url}/metadata", headers=headers, timeout=30).json()[log]
        if state["pending"] == 0 or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def test_forged_and_replayed_labels_move_no_counter(
    live_server: LiveServer, records: list[dict[str, Any]]
) -> None:
    """Security review H1: one /predict and 117 forged labels made RealizedFprHighFast true
    (fp 35, fn 82, Wilson lower bound 0.866 against 0.115)."""
    url = live_server.url
    served: list[tuple[str, int, int]] = []  # (request id, row, served label)
    with httpx.Client(base_url=url, timeout=30) as client:
        for start in (0, 50, 100):
            body = client.post("/predict", json={"records": records[start : start + 50]}).json()
            served += [
                (body["request_id"], i, p["label"]) for i, p in enumerate(body["predictions"])
            ]
        targets = served[:117]
        before = _outcomes(url)
        lines_before = len(_lines(live_server.feedback_log))

        def post(label: dict[str, Any], token: str | None) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return client.post("/feedback", json=label, headers=headers)

        # 1. No credential, or a wrong one: refused before the body is read.
        for token in (None, secrets.token_hex(32), "x"):
            answers = [
                post({"request_id": r, "row": i, "label": 1 - s}, token) for r, i, s in targets
            ]
            assert {a.status_code for a in answers} == {401}
            assert answers[0].json()["error"] == "unauthorized"
            assert answers[0].headers["www-authenticate"] == 'Bearer realm="feedback"'

        # 2. The right token, request ids this service never issued.
        other_key = live_server.feedback_log.with_name("other-key")
        other_key.write_text(secrets.token_hex(32))
        other = RequestIds(SecretFile(str(other_key), "key"))
        rid, _, _ = targets[0]
        nonce, _, tag = rid.split("-")
        forged = [
            *(f"{nonce[:8]}-{n}" for n in range(1, 40)),  # the old `<prefix>-<counter>` form
            *(other.mint(50) for _ in range(39)),  # signed with another key
            *(f"{nonce}-{n}-{tag}" for n in range(51, 90)),  # a real id, its row count raised
        ]
        assert len(forged) == 117
        answers = [
            post({"request_id": f, "row": i % 50, "label": 1}, live_server.feedback_token)
            for i, f in enumerate(forged)
        ]
        assert {a.status_code for a in answers} == {403}
        assert {a.json()["error"] for a in answers} == {"request_id_unknown"}
        # A join by entity id with no request id of this service: refused the same way.
        by_id = post(
            {"request_id": "zz", "label": 1, "id": "victim_tx_1"}, live_server.feedback_token
        )
        assert (by_id.status_code, by_id.json()["error"]) == (403, "request_id_unknown")
        out_of_range = post({"request_id": rid, "row": 50, "label": 1}, live_server.feedback_token)
        assert (out_of_range.status_code, out_of_range.json()["error"]) == (422, "row_out_of_range")
        assert _outcomes(url) == before
        assert len(_lines(live_server.feedback_log)) == lines_before

        # 3. Replay: one genuine label sent 117 times counts once; another label is a conflict.
        rid, row, label = targets[0]
        replies = [
            post({"request_id": rid, "row": row, "label": 1 - label}, live_server.feedback_token)
            for _ in range(117)
        ]
        assert [r.status_code for r in replies] == [202] + [200] * 116
        assert replies[0].json() == {"status": "accepted", "request_id": rid}  # no outcome
        assert {r.json()["status"] for r in replies[1:]} == {"already_recorded"}
        conflict = post({"request_id": rid, "row": row, "label": label}, live_server.feedback_token)
        assert (conflict.status_code, conflict.json()["error"]) == (409, "label_conflict")
    after = _outcomes(url)
    moved = {o: after[o] - before[o] for o in OUTCOMES}
    assert moved == {o: float(o == ("fp" if label else "fn")) for o in OUTCOMES}
    deadline = time.monotonic() + 5
    while len(_lines(live_server.feedback_log)) < lines_before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_lines(live_server.feedback_log)) == lines_before + 1
    print(
        f"\n117 labels without a token, 3 x 117 with a wrong one, 117 forged ids, 117 replays: "
        f"labelled_outcome moved {moved}"
    )
    _assert_healthy(url)


def test_lone_surrogates_are_refused_naming_the_field(
    live_server: LiveServer, records: list[dict[str, Any]]
) -> None:
    """Security review M2/L2: "\\ud800" in a string was scored but never logged (dropped 0), or
    answered 500; in /feedback, 202 and never written."""
    url = live_server.url
    record = records[0]
    cases = [
        ("categorical feature", [record, {**record, "country": "\ud800"}], 1, "country"),
        ("passthrough id", [{**record, "transaction_id": "\udc00"}], 0, "transaction_id"),
        ("event time", [{**record, "timestamp": "2025-01-01\udfff"}], 0, "timestamp"),
        ("a key", [{**record, "\ud800x": 1}], 0, "\\ud800x"),
    ]
    bodies = [(name, {"records": rows}, row, field) for name, rows, row, field in cases]
    bodies.append(("unknown top-level key", {"records": [record], "\udbff": 1}, None, "\\udbff"))
    with httpx.Client(base_url=url, timeout=30) as client:
        state = _settled(url, "prediction_log")
        metrics = client.get("/metrics").text
        predictions = _counter(metrics, "mlgitops_predictions_total")
        refused = _counter(metrics, "mlgitops_requests_rejected_total", code="invalid_unicode")
        for name, body, row, field in bodies:
            raw = json.dumps(body).encode()  # ASCII: "\ud800" travels as an escape
            answer = client.post(
                "/predict", content=raw, headers={"content-type": "application/json"}
            )
            assert answer.status_code == 422, (name, answer.text)
            error = answer.json()
            assert error["error"] == "invalid_unicode", name
            assert (error["detail"][0]["row"], error["detail"][0]["field"]) == (row, field), name
            assert "lone UTF-16 surrogate" in error["message"]
        rid = client.post("/predict", json={"records": [record]}).json()["request_id"]
        label = json.dumps({"request_id": rid, "label": 1, "id": "\ud800"}).encode()
        headers = {"content-type": "application/json", **live_server.feedback_auth()}
        answer = client.post("/feedback", content=label, headers=headers)
        assert (answer.status_code, answer.json()["detail"][0]["field"]) == (422, "id")
        metrics = client.get("/metrics").text
    # Nothing scored, logged or dropped for the refused bodies: only the one valid row.
    after = _settled(url, "prediction_log")
    assert (after["written"], after["dropped"]) == (state["written"] + 1, state["dropped"])
    assert _counter(metrics, "mlgitops_predictions_total") == predictions + 1
    assert _counter(metrics, "mlgitops_requests_rejected_total", code="invalid_unicode") == (
        refused + len(bodies) + 1
    )
    _assert_healthy(url)


@pytest.fixture(scope="module")
def closed_server(
    packaged: Packaged, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server with a predict token, and a join cache of 1,000 rows (the review's case)."""
    workdir = tmp_path_factory.mktemp("closed-server")
    small_cache = {"MLGITOPS_FEEDBACK_JOIN_ROWS": "1000"}
    with run_server(packaged, workdir, small_cache, predict_token=True) as server:
        assert wait_for(f"{server.url}/readyz", 200, 90, server.process)
        yield server


def test_a_predict_token_closes_the_read_routes_and_only_them(
    closed_server: LiveServer, records: list[dict[str, Any]]
) -> None:
    url = closed_server.url
    body = {"records": records[:2]}
    read, write = closed_server.read_auth(), closed_server.feedback_auth()
    with httpx.Client(base_url=url, timeout=30) as client:
        for headers in ({}, write, {"Authorization": "Bearer " + secrets.token_hex(32)}):
            answer = client.post("/predict", json=body, headers=headers)
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"] == 'Bearer realm="predict"'
            for path in ("/metadata", "/schema", "/openapi.json"):
                assert client.get(path, headers=headers).status_code == 401, path
        answer = client.post("/predict", json=body, headers=read)
        assert answer.status_code == 200
        label = {"request_id": answer.json()["request_id"], "label": 1}
        assert client.post("/feedback", json=label, headers=read).status_code == 401
        assert client.post("/feedback", json=label, headers=write).status_code == 202
        meta = client.get("/metadata", headers=read).json()
        assert meta["auth"] == {
            "predict_token": True,
            "feedback_token": True,
            "request_id_key": "shared",
        }
        document = client.get("/openapi.json", headers=read).json()
        assert document["paths"]["/predict"]["post"]["security"] == [{"predictToken": []}]
        # Probes and Prometheus need no token.
        for path in ("/livez", "/readyz", "/metrics"):
            assert client.get(path).status_code == 200, path


def test_a_repeated_x_request_id_neither_empties_the_join_cache_nor_overwrites(
    closed_server: LiveServer, records: list[dict[str, Any]]
) -> None:
    """Security review M9: 1,000 requests with one X-Request-ID left a 1,000-row join cache
    holding one entry for good (each overwrite added to the row count: the realized FPR/FNR
    alerts went blind), and the header let a client overwrite another's entry."""
    url = closed_server.url
    read, write = closed_server.read_auth(), closed_server.feedback_auth()
    with httpx.Client(base_url=url, timeout=30, headers=read) as client:

        def flood(count: int) -> set[str]:
            echoed = set()
            for i in range(count):
                answer = client.post(
                    "/predict", json={"records": [records[i % len(records)]]},
                    headers={"X-Request-ID": "shared-id"},
                )  # fmt: skip
                assert answer.status_code == 200
                echoed.add(answer.headers["x-request-id"])
            return echoed

        echoed = flood(1000)
        # Another client, with the same header, then more of the flood: under the old
        # accounting the inflated row count evicted it at the next request, and the flood's
        # entry (keyed by the header) overwrote it.
        victim = client.post(
            "/predict", json={"records": records[:3]}, headers={"X-Request-ID": "shared-id"}
        )
        victim_id, served = victim.json()["request_id"], victim.json()["predictions"][2]["label"]
        echoed |= flood(10)
        assert echoed == {"shared-id"}  # echoed for tracing
        before = client.get("/metrics").text
        # The victim's prediction is still joined: its label counts in labelled_outcome.
        label = {"request_id": victim_id, "row": 2, "label": 1}
        assert client.post("/feedback", json=label, headers=write).status_code == 202
        # The header was never a key: a label naming it is refused.
        named = client.post(
            "/feedback", json={"request_id": "shared-id", "label": 1}, headers=write
        )
        assert (named.status_code, named.json()["error"]) == (403, "request_id_unknown")
        after = client.get("/metrics").text
    joined = "mlgitops_feedback_joined_total"
    assert _counter(after, joined, result="joined") - _counter(before, joined, result="joined") == 1
    outcome = "tp" if served else "fn"
    assert (
        _counter(after, names.LABELLED_OUTCOME_TOTAL, outcome=outcome)
        - _counter(before, names.LABELLED_OUTCOME_TOTAL, outcome=outcome)
        == 1
    )
    lines = [
        line for line in _lines(closed_server.prediction_log) if line["request_id"] == victim_id
    ]
    assert [(line["row"], line["client_request_id"]) for line in lines] == [
        (0, "shared-id"), (1, "shared-id"), (2, "shared-id")
    ]  # fmt: skip
    _assert_healthy(url)


@pytest.mark.timeout(600)
def test_disk_full_on_a_small_tmpfs_loses_nothing_silently(
    packaged: Packaged, tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    """Security review M2: on a full 1 MiB tmpfs, `written` said 900 with 758 lines on disk, the
    next line glued to the cut one, and /feedback answered 503 until a restart."""
    with small_tmpfs(tmp_path / "fs", "1m") as fs:
        env = {
            "MLGITOPS_PREDICTION_LOG": str(fs / "predictions.jsonl"),
            "MLGITOPS_FEEDBACK_LOG": str(fs / "feedback.jsonl"),
            "MLGITOPS_PREDICTION_LOG_QUEUE": "500",
        }
        with run_server(packaged, tmp_path / "server", env) as server:
            url, auth = server.url, server.feedback_auth()
            assert wait_for(f"{url}/readyz", 200, 90, server.process)
            rows = 0
            with httpx.Client(base_url=url, timeout=30) as client:

                def predict() -> dict[str, Any]:
                    nonlocal rows
                    answer = client.post("/predict", json={"records": records[:MAX_BATCH]})
                    assert answer.status_code == 200
                    rows += MAX_BATCH
                    return answer.json()

                first = predict()
                _settled(url, "prediction_log")
                filler = fill(fs)
                for _ in range(40):  # about 1 MB of lines: predictions never fail
                    predict()
                    time.sleep(0.02)
                label = {"request_id": first["request_id"], "row": 0, "label": 1}
                full = client.post("/feedback", json=label, headers=auth)
                assert (full.status_code, full.json()["error"]) == (503, "feedback_unavailable")
                assert full.headers["retry-after"] == "1"
                assert "No space left" in full.json()["message"]
                meta = client.get("/metadata").json()
                assert meta["prediction_log"]["failing_since"] is not None
                assert client.get("/livez").status_code == 200
                assert client.get("/readyz").status_code in (200, 503)  # it answers
                full_state = meta["prediction_log"]

                filler.unlink()
                state = _settled(url, "prediction_log")  # the kept lines, without new traffic
                assert (state["error"], state["failing_since"]) == (None, None)
                again = client.post("/feedback", json=label, headers=auth)
                assert again.status_code == 202  # recovered without a restart
                for _ in range(3):
                    predict()
                state = _settled(url, "prediction_log")
                _assert_healthy(url)
        lines = _lines(fs / "predictions.jsonl")  # every line whole: none cut, none glued
        assert len(lines) == state["written"]
        assert state["written"] + state["dropped"] == rows
        assert state["dropped"] > 0
        assert _lines(fs / "feedback.jsonl") == [
            {**label, "time": _lines(fs / "feedback.jsonl")[0]["time"],
             "model_version": packaged.bento_tag}
        ]  # fmt: skip
        print(
            f"\n{rows} rows posted, disk full after the first {MAX_BATCH}: during "
            f"written {full_state['written']} dropped {full_state['dropped']} pending "
            f"{full_state['pending']}; after freeing: {len(lines)} whole lines on disk = written "
            f"{state['written']}, dropped {state['dropped']}, 0 cut or glued"
        )

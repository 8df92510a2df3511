"""The real server (`bentoml serve <bento>` on 127.0.0.1) through its HTTP API."""

from __future__ import annotations

import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest

from mlgitops.serving.features import FeatureSpace, validate_body
from mlgitops.serving.model import frame_from_columns, probe_records
from tests.mlgitops.serving.conftest import MAX_BATCH, LiveServer, Packaged, run_server, wait_for

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> httpx.Client:
    with httpx.Client(base_url=live_server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def records(packaged: Packaged) -> list[dict[str, Any]]:
    from mlgitops.profile import load_profile

    return probe_records(load_profile(packaged.artifacts.profile_file), 200, seed=9)


def _complete(record: dict[str, Any], packaged: Packaged) -> dict[str, Any]:
    return {k: v for k, v in record.items() if v is not None}


def _metric(text: str, name: str, labels: str = "") -> float:
    """Sum of the samples of `name` (with exactly `labels`, if given) in a /metrics page."""
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else r"(?:\{[^}]*\})?")
    return sum(float(m.group(1)) for m in re.finditer(rf"^{pattern} (\S+)$", text, re.MULTILINE))


def test_live_and_ready(client: httpx.Client) -> None:
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_valid_batch_scores_match_the_pipeline(
    client: httpx.Client, packaged: Packaged, records: list[dict[str, Any]]
) -> None:
    from mlgitops.profile import load_profile

    batch = records[:MAX_BATCH]
    response = client.post("/predict", json={"records": batch})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_version"] == packaged.bento_tag
    assert len(body["predictions"]) == len(batch)
    pipeline = joblib.load(packaged.artifacts.model_file)
    space = FeatureSpace.from_profile(load_profile(packaged.artifacts.profile_file))
    columns = validate_body({"records": batch}, space, 1000).columns
    expected = pipeline.predict_proba(frame_from_columns(space, columns))[:, 1]
    scores = np.array([p["score"] for p in body["predictions"]])
    assert np.max(np.abs(scores - expected)) <= 1e-6
    threshold = packaged.artifacts.metadata["threshold"]
    assert [p["label"] for p in body["predictions"]] == [int(s >= threshold) for s in expected]
    assert response.headers["x-request-id"] == body["request_id"]


def test_single_row_and_client_request_id(
    client: httpx.Client, live_server: LiveServer, records: list[dict[str, Any]]
) -> None:
    response = client.post(
        "/predict", json={"records": records[:1]}, headers={"X-Request-ID": "req-123"}
    )
    assert response.status_code == 200
    # The client's id is echoed for tracing; the request id is the service's own, signed.
    assert response.headers["x-request-id"] == "req-123"
    request_id = response.json()["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}-1-[0-9a-f]{32}", request_id)
    deadline = time.monotonic() + 5
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not lines:
        time.sleep(0.1)
        text = live_server.prediction_log.read_text()
        lines = [json.loads(x) for x in text.splitlines() if request_id in x]
    assert [(line["request_id"], line["client_request_id"]) for line in lines] == [
        (request_id, "req-123")
    ]


def _raw(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True).encode()


def _invalid_cases(record: dict[str, Any]) -> list[tuple[str, bytes, int, str, int | None, str]]:
    def with_(**changes: Any) -> dict[str, Any]:
        out = dict(record)
        for key, value in changes.items():
            if value is _DROP:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    return [
        ("missing", _raw({"records": [record, with_(amount=_DROP)]}), 422, "missing_feature", 1,
         "amount"),
        ("unknown", _raw({"records": [with_(colour="red")]}), 422, "unknown_feature", 0, "colour"),
        ("wrong type", _raw({"records": [with_(hour="3")]}), 422, "wrong_type", 0, "hour"),
        ("category type", _raw({"records": [with_(country={"a": 1})]}), 422, "wrong_type", 0,
         "country"),
        ("nan", _raw({"records": [record, record, with_(amount=math.nan)]}), 422, "not_finite",
         2, "amount"),
        ("infinity", _raw({"records": [with_(hour=math.inf)]}), 422, "not_finite", 0, "hour"),
        ("-infinity", _raw({"records": [with_(hour=-math.inf)]}), 422, "not_finite", 0, "hour"),
        ("overflow", b'{"records": [' + _raw(with_(amount=1))[:-1] + b', "amount": 1e999}]}',
         422, "not_finite", 0, "amount"),
        ("empty", _raw({"records": []}), 422, "empty_batch", None, "records"),
        ("too large", _raw({"records": [record] * (MAX_BATCH + 1)}), 413, "batch_too_large",
         None, "records"),
        ("null required", _raw({"records": [with_(amount=None)]}), 422, "null_not_allowed", 0,
         "amount"),
        ("not json", b"{records: [", 400, "invalid_json", None, ""),
        ("not object", b"[1, 2]", 400, "invalid_body", None, ""),
        ("bare record", _raw(record), 422, "records_not_wrapped", None, ""),
        ("bare array", _raw([record, record]), 422, "records_not_wrapped", None, ""),
    ]  # fmt: skip


_DROP = object()


def test_every_invalid_case_is_a_4xx_naming_row_and_field(
    client: httpx.Client, records: list[dict[str, Any]], packaged: Packaged
) -> None:
    record = _complete(records[0], packaged)
    for name, raw, status, code, row, field in _invalid_cases(record):
        response = client.post(
            "/predict", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code == status, (name, response.text)
        body = response.json()
        assert body["error"] == code, name
        first = body["detail"][0]
        assert first["row"] == row, name
        assert (first["field"] or "") == field, name
    assert client.get("/readyz").status_code == 200


def test_allowed_missing_values_and_unseen_categories_are_counted(
    client: httpx.Client, packaged: Packaged, records: list[dict[str, Any]]
) -> None:
    from mlgitops.profile import load_profile

    profile = load_profile(packaged.artifacts.profile_file)
    optional = next(name for name in profile.features if profile.allows_missing(name))
    categorical = next(
        name for name, spec in profile.features.items() if spec.kind == "categorical"
    )
    before = client.get("/metrics").text
    record = _complete(records[0], packaged)
    rows = [
        {**record, optional: None},
        {k: v for k, v in record.items() if k != optional},
        {**record, categorical: "never-seen-in-training"},
    ]
    response = client.post("/predict", json={"records": rows})
    assert response.status_code == 200, response.text
    after = client.get("/metrics").text
    missing = "mlgitops_feature_missing_total"
    unseen = "mlgitops_feature_unseen_category_total"
    # Every series names the release served.
    release = f'bento_tag="{packaged.bento_tag}"'
    assert _metric(after, missing, f'{release},feature="{optional}"') - _metric(
        before, missing, f'{release},feature="{optional}"'
    ) == pytest.approx(2)
    assert _metric(after, unseen, f'{release},feature="{categorical}"') - _metric(
        before, unseen, f'{release},feature="{categorical}"'
    ) == pytest.approx(1)


def test_metrics_expose_labels_scores_and_bentoml_request_metrics(
    client: httpx.Client, records: list[dict[str, Any]]
) -> None:
    client.post("/predict", json={"records": records[:20]})
    text = client.get("/metrics").text
    assert _metric(text, "mlgitops_predictions_total") >= 20
    assert _metric(text, "mlgitops_prediction_score_count") >= 20
    assert "mlgitops_prediction_score_bucket" in text
    assert "bentoml_service_request" in text


def _labelled(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    found = []
    for m in re.finditer(rf"^{re.escape(name)}\{{([^}}]*)\}} (\S+)$", text, re.MULTILINE):
        found.append((dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))), float(m.group(2))))
    return found


def _series(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of `name` by their labels (sorted; `bento_tag` left out but for model_info:
    `_releases` reads it)."""
    from mlgitops.monitoring import metric_names as names

    found: dict[tuple[tuple[str, str], ...], float] = {}
    for labels, value in _labelled(text, name):
        if name != names.MODEL_INFO:
            labels.pop(names.RELEASE_LABEL)
        key = tuple(sorted(labels.items()))
        found[key] = found.get(key, 0.0) + value
    return found


def _releases(text: str, name: str) -> set[str]:
    return {labels.get("bento_tag", "(none)") for labels, _ in _labelled(text, name)}


# Before the tests that start other servers: those share the BentoML home, and a server
# starting clears the Prometheus multiprocess files of the store's home.
def test_monitoring_counters_follow_the_metric_contract(
    client: httpx.Client, live_server: LiveServer, packaged: Packaged, records: list[dict[str, Any]]
) -> None:
    from mlgitops.monitoring import metric_names as names
    from mlgitops.profile import bin_label, bin_labels, load_profile

    profile = load_profile(packaged.artifacts.profile_file)
    before = client.get("/metrics").text
    # Every series of the contract names the release served (the rules keep it).
    for name in names.LABELS:
        assert _releases(before, name) == {packaged.bento_tag}, name
    # Every (feature, bin) exists from the start, traffic or not.
    bins = _series(before, names.FEATURE_BIN_TOTAL)
    for feature, spec in profile.features.items():
        for label in bin_labels(spec):
            assert (("bin", label), ("feature", feature)) in bins
    batch = records[:MAX_BATCH]
    body = client.post("/predict", json={"records": batch}).json()
    after = client.get("/metrics").text
    delta = {k: v - bins.get(k, 0.0) for k, v in _series(after, names.FEATURE_BIN_TOTAL).items()}
    want = {}
    for record in batch:
        for feature, spec in profile.features.items():
            key = (("bin", bin_label(spec, record.get(feature))), ("feature", feature))
            want[key] = want.get(key, 0) + 1
    assert {k: v for k, v in delta.items() if v} == want
    score_delta = sum(_series(after, names.SCORE_BIN_TOTAL).values()) - sum(
        _series(before, names.SCORE_BIN_TOTAL).values()
    )
    assert score_delta == len(batch)
    expected = _series(after, names.EXPECTED_OUTCOME_TOTAL)
    assert set(expected) == {(("outcome", o),) for o in names.OUTCOMES}
    gained = sum(expected.values()) - sum(_series(before, names.EXPECTED_OUTCOME_TOTAL).values())
    assert gained == pytest.approx(len(batch))
    info = _series(after, names.MODEL_INFO)
    assert list(info.values()) == [1.0]
    assert dict(next(iter(info))) == {
        "bento_tag": packaged.bento_tag,
        "model_hash": packaged.release.model_hash,
        "data_hash": packaged.release.data_hash,
        "git_commit": "deadbeef",
    }
    # A label for row 3 joins the served label of row 3 in labelled_outcome; the answer does
    # not tell the outcome.
    served = body["predictions"][3]["label"]
    feedback = {"request_id": body["request_id"], "row": 3, "label": 1}
    auth = live_server.feedback_auth()
    answer = client.post("/feedback", json=feedback, headers=auth)
    assert answer.status_code == 202, answer.text
    assert answer.json() == {"status": "accepted", "request_id": body["request_id"]}
    labelled = _series(client.get("/metrics").text, names.LABELLED_OUTCOME_TOTAL)
    old = _series(after, names.LABELLED_OUTCOME_TOTAL)
    key = (("outcome", "tp" if served else "fn"),)
    assert labelled[key] - old.get(key, 0.0) == 1.0
    assert sum(labelled.values()) - sum(old.values()) == 1.0
    unknown = client.post(
        "/feedback", json={"request_id": "never-served", "label": 1}, headers=auth
    )
    assert unknown.status_code == 403
    assert unknown.json()["error"] == "request_id_unknown"


def test_metadata_traces_the_pod_back_to_its_commit(
    client: httpx.Client, packaged: Packaged
) -> None:
    meta = client.get("/metadata").json()
    assert meta["bento_tag"] == packaged.bento_tag
    assert meta["model_tag"] == packaged.model_tag
    assert meta["model_hash"] == packaged.artifacts.metadata["model_hash"]
    assert meta["data_hash"] == packaged.artifacts.metadata["data_hash"]
    assert meta["params_hash"] == packaged.artifacts.metadata["params_hash"]
    assert meta["git_commit"] == "deadbeef"
    assert meta["threshold"] == packaged.artifacts.metadata["threshold"]
    assert meta["data_until"] == packaged.artifacts.metadata["data_until"]
    assert meta["metrics"]["roc_auc"] == packaged.artifacts.metadata["metrics"]["roc_auc"]
    assert meta["ready"] is True
    assert meta["runtime"] == "onnx"
    assert meta["params"]["model"] == "hist_gradient_boosting"
    assert [f["name"] for f in meta["features"]] == packaged.artifacts.metadata["feature_names"]
    schema = client.get("/schema").json()
    assert schema["properties"]["records"]["maxItems"] == MAX_BATCH
    openapi = client.get("/openapi.json").json()
    body = openapi["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == schema


def test_prediction_log_and_feedback(
    client: httpx.Client, live_server: LiveServer, records: list[dict[str, Any]]
) -> None:
    response = client.post("/predict", json={"records": records[:3]})
    request_id = response.json()["request_id"]
    deadline = time.monotonic() + 5
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(lines) < 3:
        time.sleep(0.1)
        text = live_server.prediction_log.read_text() if live_server.prediction_log.exists() else ""
        lines = [json.loads(x) for x in text.splitlines() if request_id in x]
    assert [line["row"] for line in lines] == [0, 1, 2]
    assert lines[0]["model_version"] == response.json()["model_version"]
    assert lines[0]["score"] == response.json()["predictions"][0]["score"]
    assert set(lines[0]["features"]) == {k for k, v in records[0].items()}
    assert lines[0]["time"]

    auth = live_server.feedback_auth()
    accepted = client.post(
        "/feedback", json={"request_id": request_id, "row": 1, "label": 1}, headers=auth
    )
    assert accepted.status_code == 202, accepted.text
    for bad in ({"request_id": request_id, "label": 2}, {"label": 1}, {"request_id": "x",
                "label": 0, "extra": 1}, [1]):  # fmt: skip
        assert client.post("/feedback", json=bad, headers=auth).status_code in (400, 422)
    deadline = time.monotonic() + 5
    entries: list[dict[str, Any]] = []
    while time.monotonic() < deadline and not entries:
        time.sleep(0.1)
        if live_server.feedback_log.exists():
            entries = [json.loads(x) for x in live_server.feedback_log.read_text().splitlines()]
    assert entries[-1]["request_id"] == request_id
    assert (entries[-1]["row"], entries[-1]["label"]) == (1, 1)


def test_concurrent_clients_get_their_own_answers(
    live_server: LiveServer, records: list[dict[str, Any]]
) -> None:
    def worker(offset: int) -> list[tuple[int, float]]:
        out = []
        with httpx.Client(base_url=live_server.url, timeout=30) as c:
            for i in range(40):
                record = records[(offset * 40 + i) % len(records)]
                r = c.post("/predict", json={"records": [record]})
                out.append((r.status_code, r.json()["predictions"][0]["score"]))
        return out

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    assert all(status == 200 for result in results for status, _ in result)
    # The same record gets the same score whichever connection asked.
    with httpx.Client(base_url=live_server.url) as c:
        single = [
            c.post("/predict", json={"records": [r]}).json()["predictions"][0]["score"]
            for r in records[:40]
        ]
    assert [s for _, s in results[0]] == single


def _corrupt_model(packaged: Packaged, version: str, how: str) -> str:
    """A second model in the store whose file is damaged after saving."""
    import bentoml

    from mlgitops.io import file_sha256
    from mlgitops.packaging.bento import save_model
    from mlgitops.serving.layout import MODEL_FILE

    metadata = dict(packaged.artifacts.metadata)
    tag = save_model(
        name="fraud-detector",
        version=version,
        model_file=packaged.artifacts.model_file,
        profile_file=packaged.artifacts.profile_file,
        schema_file=packaged.artifacts.schema_file,
        model_card_file=packaged.artifacts.model_card_file,
        metadata=metadata,
    )
    path = Path(bentoml.models.get(tag).path_of(MODEL_FILE))
    data = bytearray(path.read_bytes())
    if how == "flipped":  # the hash check catches it
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:  # truncated, and the recorded hash updated to match: the loader must refuse it
        path.write_bytes(bytes(data[: len(data) // 3]))
        yaml_path = path.parent / "model.yaml"
        yaml_path.write_text(
            yaml_path.read_text().replace(
                str(metadata["model_hash"]), f"sha256:{file_sha256(path)}"
            )
        )
    return tag


@pytest.mark.parametrize(
    ("how", "version"), [("flipped", "badbadbad001"), ("truncated", "badbadbad002")]
)
def test_corrupted_model_is_live_but_never_ready(
    packaged: Packaged, tmp_path: Path, how: str, version: str
) -> None:
    tag = _corrupt_model(packaged, version, how)
    with run_server(packaged, tmp_path, {"MLGITOPS_MODEL_TAG": tag}) as server:
        assert httpx.get(f"{server.url}/livez").status_code == 200
        # Give the loader ample time; readiness must never turn true.
        assert not wait_for(f"{server.url}/readyz", 200, 8, server.process)
        assert httpx.get(f"{server.url}/readyz").status_code == 503
        response = httpx.post(f"{server.url}/predict", json={"records": [{}]})
        assert response.status_code == 503
        meta = httpx.get(f"{server.url}/metadata").json()
        assert meta["ready"] is False
        assert meta["error"]
        assert meta["model_tag"] == tag


def test_exported_archive_serves_alone_as_in_the_image(
    packaged: Packaged, tmp_path: Path, records: list[dict[str, Any]]
) -> None:
    """The image runs `bentoml serve <unpacked archive>` with an empty BentoML home: the bento
    must carry its code, its pin and its model."""
    import tarfile

    from mlgitops.packaging.bento import export_bento

    archive = tmp_path / "bento.tar"
    export_bento(packaged.bento_tag, archive)
    unpacked = tmp_path / "bento"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    empty_home = tmp_path / "empty-home"
    # As `docker run` of the image with no credential mounted: predictions are served, labels
    # are refused (secure by default), request ids are signed by the worker's own key.
    with run_server(
        packaged, tmp_path / "run", target=str(unpacked), home=empty_home,
        feedback_token=False, request_id_key=False,
    ) as server:  # fmt: skip
        assert wait_for(f"{server.url}/readyz", 200, 90, server.process)
        response = httpx.post(f"{server.url}/predict", json={"records": records[:2]})
        assert response.status_code == 200
        assert response.json()["model_version"] == packaged.bento_tag
        label = {"request_id": response.json()["request_id"], "label": 1}
        refused = httpx.post(f"{server.url}/feedback", json=label)
        assert refused.status_code == 403
        assert refused.json()["error"] == "feedback_not_configured"
        assert "MLGITOPS_FEEDBACK_TOKEN_FILE is not set" in refused.json()["message"]
        auth = httpx.get(f"{server.url}/metadata").json()["auth"]
        assert auth == {"predict_token": False, "feedback_token": False, "request_id_key": "worker"}
    assert not (empty_home / "models" / "fraud-detector").exists()


def _data_rows(count: int) -> list[dict[str, Any]]:
    """Rows of data/transactions.csv as a client sends them: every column but the target, typed
    JSON values, empty cells as null (generated the same way when the data is not pulled)."""
    import io

    import pandas as pd

    from mlgitops.data.generate import GeneratorConfig, generate_csv_text
    from tests.support.project import REPO_ROOT

    data = REPO_ROOT / "data" / "transactions.csv"
    text = data.read_text() if data.is_file() else generate_csv_text(GeneratorConfig(rows=count))
    table = pd.read_csv(io.StringIO(text), nrows=count).drop(columns=["is_fraud"])
    rows = table.to_dict("records")
    return [{k: (None if v != v else v) for k, v in row.items()} for row in rows]


def test_a_row_of_the_data_file_is_scored_and_its_id_echoed_and_logged(
    client: httpx.Client, live_server: LiveServer
) -> None:
    rows = _data_rows(3)
    assert {"transaction_id", "timestamp"} <= set(rows[0])
    response = client.post("/predict", json={"records": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["id"] for p in body["predictions"]] == [r["transaction_id"] for r in rows]
    # The same features without the id and the time score the same: they never reach the model.
    bare = [{k: v for k, v in r.items() if k not in ("transaction_id", "timestamp")} for r in rows]
    again = client.post("/predict", json={"records": bare}).json()["predictions"]
    assert [p["score"] for p in again] == [p["score"] for p in body["predictions"]]
    assert [p["id"] for p in again] == [None, None, None]
    unknown = client.post("/predict", json={"records": [{**rows[0], "colour": "red"}]})
    assert unknown.status_code == 422
    assert unknown.json()["detail"][0]["field"] == "colour"

    deadline = time.monotonic() + 5
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(lines) < 3:
        time.sleep(0.1)
        text = live_server.prediction_log.read_text()
        lines = [json.loads(x) for x in text.splitlines() if body["request_id"] in x]
    assert [(line["id"], line["event_time"]) for line in lines] == [
        (r["transaction_id"], r["timestamp"]) for r in rows
    ]
    assert "transaction_id" not in lines[0]["features"]
    schema = client.get("/schema").json()["properties"]["records"]["items"]
    assert {"transaction_id", "timestamp"} <= set(schema["properties"])


def test_counters_of_two_workers_sum_exactly(
    packaged: Packaged, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    from mlgitops.monitoring import metric_names as names

    with run_server(packaged, tmp_path / "two-workers", {"MLGITOPS_WORKERS": "2"}) as server:
        assert wait_for(f"{server.url}/readyz", 200, 90, server.process)
        posted = 0
        for start in range(0, 120, 4):  # a new connection each: both workers take requests
            response = httpx.post(
                f"{server.url}/predict", json={"records": records[start : start + 4]}, timeout=30
            )
            assert response.status_code == 200, response.text
            posted += 4
        text = httpx.get(f"{server.url}/metrics", timeout=30).text
    per_feature: dict[str, float] = {}
    for labels, value in _series(text, names.FEATURE_BIN_TOTAL).items():
        feature = dict(labels)["feature"]
        per_feature[feature] = per_feature.get(feature, 0.0) + value
    assert set(per_feature.values()) == {float(posted)}
    assert sum(_series(text, names.SCORE_BIN_TOTAL).values()) == posted
    assert sum(_series(text, names.PREDICTIONS_TOTAL).values()) == posted
    assert sum(_series(text, names.EXPECTED_OUTCOME_TOTAL).values()) == pytest.approx(posted)
    # One model_info series at 1, not one per worker.
    assert list(_series(text, names.MODEL_INFO).values()) == [1.0]

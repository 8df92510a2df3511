"""A challenger served beside the champion, in process: the split, sticky keys, shadow scores,
the prediction log, /metadata and the per-arm counters."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from starlette.testclient import TestClient

from mlgitops.config import ServingConfig
from mlgitops.experiment import sequential
from mlgitops.release import ReleaseRecord
from mlgitops.serving.app import create_app
from mlgitops.serving.experiment import ExperimentPin
from mlgitops.serving.features import validate_records
from mlgitops.serving.model import probe_records
from mlgitops.serving.runtime import Pinned, Runtime
from tests.mlgitops.serving.conftest import BENTO_NAME, Packaged, dev_release, save_dev_model
from tests.support.devmodel import make_dev_artifacts

CHALLENGER_VERSION = "c0ffee000001"
BATCH = 1000


@pytest.fixture(scope="module")
def challenger(packaged: Packaged, tmp_path_factory: pytest.TempPathFactory) -> ReleaseRecord:
    """A second, smaller model in the same store: the challenger's release."""
    artifacts = make_dev_artifacts(tmp_path_factory.mktemp("challenger"), rows=3000, max_iter=20)
    release = dev_release(artifacts, version=CHALLENGER_VERSION)
    save_dev_model(artifacts, release)
    return release


def _pin(challenger: ReleaseRecord, mode: str, share: float, key: str) -> ExperimentPin:
    return ExperimentPin(
        mode=mode,  # type: ignore[arg-type]
        share=share,
        salt="test-salt",
        assignment_key=key,
        challenger_revision="experiment-v2",
        challenger_bento_tag=f"{BENTO_NAME}:{CHALLENGER_VERSION}",
        challenger_model_tag=challenger.model_tag,
        challenger_release=challenger,
    )


def _serve(
    packaged: Packaged, log: Path, experiment: ExperimentPin | None
) -> tuple[Runtime, TestClient]:
    pinned = Pinned(packaged.bento_tag, packaged.model_tag, packaged.release, experiment)
    settings = ServingConfig(prediction_log=str(log), feedback_log="off")
    runtime = Runtime(pinned, settings)
    runtime.start(background=False)
    app = create_app()
    app.state.runtime = runtime
    return runtime, TestClient(app)


@pytest.fixture(scope="module")
def records(packaged: Packaged) -> list[dict[str, Any]]:
    from mlgitops.profile import load_profile

    rows = probe_records(load_profile(packaged.artifacts.profile_file), 12_000, seed=5)
    return [{**row, "transaction_id": f"tx_{i:08d}"} for i, row in enumerate(rows)]


def _post_all(client: TestClient, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    predictions = []
    for start in range(0, len(rows), BATCH):
        response = client.post("/predict", json={"records": rows[start : start + BATCH]})
        assert response.status_code == 200, response.text
        predictions.extend(response.json()["predictions"])
    return predictions


def _log_lines(runtime: Runtime, log: Path) -> list[dict[str, Any]]:
    runtime.close()  # writes what is queued
    return [orjson.loads(line) for line in log.read_bytes().splitlines()]


@pytest.fixture
def ab(
    packaged: Packaged, challenger: ReleaseRecord, tmp_path: Path
) -> Iterator[tuple[Runtime, TestClient, Path]]:
    log = tmp_path / "predictions.jsonl"
    runtime, client = _serve(packaged, log, _pin(challenger, "ab", 0.3, "transaction_id"))
    assert runtime.ready, runtime.error
    yield runtime, client, log
    runtime.close()


def test_the_split_over_12k_requests_passes_the_srm_check_and_each_arm_scores_its_rows(
    ab: tuple[Runtime, TestClient, Path], records: list[dict[str, Any]]
) -> None:
    runtime, client, log = ab
    predictions = _post_all(client, records)
    arms = [p["arm"] for p in predictions]
    n_b = arms.count("challenger")
    srm = sequential.srm_test(len(arms) - n_b, n_b, 0.3)
    assert srm.p_value >= 0.001, (n_b, len(arms))
    # Each row is answered by its arm's model, at that model's threshold.
    sample = records[:BATCH]
    batch = validate_records(sample, runtime.model.space)  # type: ignore[union-attr]
    champion = runtime.model.scores(batch)  # type: ignore[union-attr]
    challenger = runtime.challenger.scores(batch)  # type: ignore[union-attr]
    versions = {
        "champion": runtime.pinned.bento_tag,
        "challenger": f"{BENTO_NAME}:{CHALLENGER_VERSION}",
    }
    for i, prediction in enumerate(predictions[:BATCH]):
        expected = challenger[i] if prediction["arm"] == "challenger" else champion[i]
        assert prediction["score"] == pytest.approx(float(expected), abs=1e-12)
        assert prediction["model_version"] == versions[prediction["arm"]]
    assert not np.allclose(champion, challenger)  # two different models really answered
    lines = _log_lines(runtime, log)
    assert [line["arm"] for line in lines] == arms
    assert {line["champion_version"] for line in lines} == {runtime.pinned.bento_tag}
    assert {line["challenger_version"] for line in lines} == {versions["challenger"]}
    assert all(line["model_version"] == versions[line["arm"]] for line in lines)
    assert all("unit" not in line for line in lines)  # the key is the id: logged as `id`


def test_the_same_key_always_lands_in_the_same_arm(
    ab: tuple[Runtime, TestClient, Path], records: list[dict[str, Any]]
) -> None:
    _, client, _ = ab
    first = {p["id"]: p["arm"] for p in _post_all(client, records[:3000])}
    shuffled = records[:3000]
    random.Random(1).shuffle(shuffled)
    again = {p["id"]: p["arm"] for p in _post_all(client, shuffled)}
    assert again == first
    assert set(first.values()) == {"champion", "challenger"}


def test_metadata_and_metrics_show_the_experiment(
    ab: tuple[Runtime, TestClient, Path], records: list[dict[str, Any]]
) -> None:
    from prometheus_client import REGISTRY

    runtime, client, _ = ab

    def counted(arm: str) -> float:
        labels = {"bento_tag": runtime.pinned.bento_tag, "arm": arm}
        value = REGISTRY.get_sample_value("mlgitops_experiment_predictions_total", labels)
        return value or 0.0

    before = {arm: counted(arm) for arm in ("champion", "challenger")}
    predictions = _post_all(client, records[:2000])
    arms = [p["arm"] for p in predictions]
    for arm in ("champion", "challenger"):
        assert counted(arm) - before[arm] == arms.count(arm)
    experiment = client.get("/metadata").json()["experiment"]
    assert experiment["mode"] == "ab"
    assert experiment["share"] == 0.3
    assert experiment["assignment_key"] == "transaction_id"
    assert experiment["challenger"]["revision"] == "experiment-v2"
    assert experiment["challenger"]["model_tag"] == f"{BENTO_NAME}:{CHALLENGER_VERSION}"
    assert experiment["challenger"]["loaded"] is True
    assert experiment["champion"]["model_tag"] == runtime.pinned.model_tag
    assert experiment["predictions"]["challenger"] >= arms.count("challenger")


def test_a_key_other_than_the_id_is_logged_as_the_unit_and_keeps_its_rows_together(
    packaged: Packaged, challenger: ReleaseRecord, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    log = tmp_path / "by-country.jsonl"
    runtime, client = _serve(packaged, log, _pin(challenger, "ab", 0.5, "country"))
    predictions = _post_all(client, records[:2000])
    lines = _log_lines(runtime, log)
    arm_of: dict[str, set[str]] = {}
    for line, prediction in zip(lines, predictions, strict=True):
        assert line["arm"] == prediction["arm"]
        arm_of.setdefault(line["unit"], set()).add(line["arm"])
    assert all(len(arms) == 1 for arms in arm_of.values())  # one country, one arm
    assert [line["unit"] for line in lines] == [r.get("country") for r in records[:2000]]


def test_shadow_mode_answers_with_the_champion_and_logs_both_scores(
    packaged: Packaged, challenger: ReleaseRecord, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    log = tmp_path / "shadow.jsonl"
    runtime, client = _serve(packaged, log, _pin(challenger, "shadow", 0.5, "transaction_id"))
    rows = records[:BATCH]
    predictions = _post_all(client, rows)
    batch = validate_records(rows, runtime.model.space)  # type: ignore[union-attr]
    champion = runtime.model.scores(batch)  # type: ignore[union-attr]
    shadow = runtime.challenger.scores(batch)  # type: ignore[union-attr]
    assert [p["score"] for p in predictions] == pytest.approx(champion.tolist(), abs=1e-12)
    assert all("arm" not in p for p in predictions)  # the client sees the champion only
    lines = _log_lines(runtime, log)
    assert {line["arm"] for line in lines} == {"champion"}
    assert [line["score"] for line in lines] == pytest.approx(champion.tolist(), abs=1e-12)
    assert [line["challenger_score"] for line in lines] == pytest.approx(shadow.tolist())
    threshold = challenger.threshold
    assert [line["challenger_label"] for line in lines] == [int(s >= threshold) for s in shadow]
    assert client.get("/metadata").json()["experiment"]["mode"] == "shadow"


def test_a_key_that_is_not_a_column_keeps_the_service_unready_with_one_line(
    packaged: Packaged, challenger: ReleaseRecord, tmp_path: Path
) -> None:
    runtime, client = _serve(packaged, tmp_path / "x.jsonl", _pin(challenger, "ab", 0.3, "card_id"))
    assert not runtime.ready
    assert runtime.error is not None
    assert "experiment.assignment_key: 'card_id' is not a column of the data" in runtime.error
    assert client.post("/predict", json={"records": [{}]}).status_code == 503
    runtime.close()


def test_without_an_experiment_nothing_changes(
    packaged: Packaged, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    log = tmp_path / "plain.jsonl"
    runtime, client = _serve(packaged, log, None)
    predictions = _post_all(client, records[:10])
    assert all(set(p) == {"score", "label", "id"} for p in predictions)
    assert client.get("/metadata").json()["experiment"] is None
    assert all("arm" not in line for line in _log_lines(runtime, log))


@pytest.mark.timeout(300)
def test_a_built_bento_serves_the_experiment_over_http(
    packaged: Packaged,
    challenger: ReleaseRecord,
    records: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    """The pin as `build_bento` writes it, served by `bentoml serve`: /metadata and /metrics."""
    import httpx

    from mlgitops.packaging.bento import build_bento, pinned_requirements
    from tests.mlgitops.serving.conftest import MAX_BATCH, run_server, wait_for
    from tests.support.project import REPO_ROOT

    pin = _pin(challenger, "ab", 0.5, "transaction_id")
    tag = build_bento(
        bento_name=BENTO_NAME,
        version="ab0000000001",
        model_tag=packaged.model_tag,
        release=packaged.release.model_dump(mode="json"),
        requirements=pinned_requirements(REPO_ROOT / "requirements.lock"),
        experiment=pin.as_json(),
    )
    with run_server(packaged, tmp_path / "server", target=tag) as server:
        assert wait_for(f"{server.url}/readyz", 200, 90, server.process), (
            server.log_file.read_text()
        )
        with httpx.Client(base_url=server.url, timeout=30) as client:
            arms: list[str] = []
            for start in range(0, 400, MAX_BATCH):
                response = client.post(
                    "/predict", json={"records": records[start : start + MAX_BATCH]}
                )
                assert response.status_code == 200, response.text
                arms += [p["arm"] for p in response.json()["predictions"]]
            experiment = client.get("/metadata").json()["experiment"]
            metrics = client.get("/metrics").text
    assert experiment["challenger"]["model_tag"] == challenger.model_tag
    assert experiment["challenger"]["loaded"] is True
    for arm in ("champion", "challenger"):
        [line] = [
            line
            for line in metrics.splitlines()
            if line.startswith("mlgitops_experiment_predictions_total{") and f'arm="{arm}"' in line
        ]
        assert f'bento_tag="{tag}"' in line
        assert line.endswith(f"}} {float(arms.count(arm))}")

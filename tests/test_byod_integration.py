"""Bring your own data: another table, another target, no code changes, `dvc repro` to the end."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlgitops.config import load_params
from mlgitops.io import load_pipeline
from mlgitops.profile import load_profile
from mlgitops.serving.features import FeatureSpace, validate_body
from mlgitops.serving.model import build_model
from tests.support.project import make_project, run

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def churn_table(rows: int = 2500, seed: int = 11) -> pd.DataFrame:
    """A subscription-churn table: string target, booleans, integer codes, gaps, an id column."""
    rng = random.Random(seed)
    records = []
    for index in range(rows):
        tenure = rng.randint(1, 72)
        monthly = round(rng.uniform(15, 120), 2)
        contract = rng.choice(["month-to-month", "one-year", "two-year"])
        support_calls = rng.randint(0, 9)
        paperless = rng.random() < 0.6
        risk = (support_calls / 9) + (contract == "month-to-month") * 0.8 - tenure / 72
        records.append(
            {
                "customer_id": f"C{index:06d}",
                "tenure_months": tenure,
                "monthly_charges": monthly if rng.random() > 0.05 else None,
                "contract": contract,
                "plan_code": rng.choice([1, 2, 3, 7]),
                "paperless_billing": paperless,
                "region": rng.choice(["north", "south", "east", "west", None]),
                "support_calls": support_calls,
                "churned": "yes" if rng.random() < 0.08 + 0.25 * max(risk, 0) else "no",
            }
        )
    return pd.DataFrame.from_records(records)


@pytest.fixture(scope="module")
def byod_project(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("byod") / "repo", rows=600)
    churn_table().to_parquet(root / "data" / "churn.parquet", index=False)
    params_file = root / "params.yaml"
    raw = yaml.safe_load(params_file.read_text())
    raw["data"] = {
        "path": "data/churn.parquet",
        "target": "churned",
        "positive_class": "yes",
        "time_column": None,
        "id_column": "customer_id",
        "column_types": {"plan_code": "categorical"},
    }
    raw["validate"].update(min_rows=500, min_positive=20)
    raw["package"]["bento_name"] = "churn-model"
    raw["monitoring"].update(segments=["contract"])
    raw["report"]["words"] = {
        "model": "churn model",
        "positive": "churning customer",
        "negative": "staying customer",
        "flagged": "flagged as likely to churn",
    }
    raw["report"].update(daily_volume=2000, review_capacity_per_day=300)
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    run(["dvc", "add", "-q", "data"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "churn data"], root)
    run(["dvc", "repro"], root, env={"BENTOML_HOME": str(root.parent / "bentoml")})
    return root


def test_repro_runs_to_the_end_on_another_table(byod_project):
    release = json.loads((byod_project / "release.json").read_text())
    assert release["bento_name"] == "churn-model"
    assert 0.5 < release["metrics"]["roc_auc"] <= 1.0
    schema = json.loads((byod_project / "artifacts/schema.json").read_text())
    kinds = {f["name"]: f["kind"] for f in schema["features"]}
    assert kinds == {
        "tenure_months": "numeric",
        "monthly_charges": "numeric",
        "contract": "categorical",
        "plan_code": "categorical",
        "paperless_billing": "categorical",
        "region": "categorical",
        "support_calls": "numeric",
    }
    assert schema["dropped_columns"] == ["customer_id"]
    assert "up to date" in run(["dvc", "status"], byod_project).stdout


def test_the_packaged_model_serves_the_new_schema(byod_project):
    params = load_params(byod_project / "params.yaml")
    profile = load_profile(byod_project / params.paths.profile)
    release = json.loads((byod_project / "release.json").read_text())
    pipeline = load_pipeline(byod_project / params.paths.model)
    model = build_model(pipeline, profile, release["threshold"])
    body = {
        "records": [
            {
                "tenure_months": 3,
                "monthly_charges": None,
                "contract": "month-to-month",
                "plan_code": 7,
                "paperless_billing": True,
                "region": "north",
                "support_calls": 8,
            }
        ]
    }
    batch = validate_body(body, FeatureSpace.from_profile(profile), max_batch_size=10)
    scores = model.scores(batch)
    assert 0.0 <= float(scores[0]) <= 1.0
    assert model.self_check_difference <= 1e-9


def test_the_report_speaks_of_customers_and_reruns_to_the_same_bytes(byod_project):
    params = load_params(byod_project / "params.yaml")
    twin = json.loads((byod_project / params.paths.report_json).read_text())
    sentence = twin["headline"]["sentence"]
    assert sentence.startswith("With these settings, the churn model would have ")
    assert " staying customers would be flagged as likely to churn and sent" in sentence
    assert sentence.endswith(" churning customers would be correctly caught.")
    assert "transaction" not in sentence
    assert twin["lineage"]["bento_tag"] == release_tag(byod_project)
    assert twin["data"]["time_column"] is None
    page = (byod_project / params.paths.report_html).read_bytes()
    assert b"https://" not in page
    assert b"http://" not in page
    run(["dvc", "repro", "--force", "--single-item", "report"], byod_project)
    assert (byod_project / params.paths.report_html).read_bytes() == page


def release_tag(root: Path) -> str:
    release = json.loads((root / "release.json").read_text())
    return f"{release['bento_name']}:{release['bento_version']}"


def test_the_export_passes_its_gates_and_serves_the_new_schema(byod_project):
    """The export stage on another table: parity and quantization gates, every artifact, and
    the exported graph serving the churn schema (as package.model_format onnx would)."""
    from mlgitops.serving.model import build_exported_model, reference_scores

    params = load_params(byod_project / "params.yaml")
    metrics = json.loads((byod_project / params.paths.export_metrics).read_text())
    assert metrics["onnx"]["decisions_flipped"] == 0
    assert metrics["onnx"]["max_abs_delta_score"] <= params.export.parity_tolerance
    assert metrics["binned_float"]["decisions_flipped"] == 0
    assert metrics["quantized"]["flipped_fraction"] <= params.export.quantize.max_flipped_fraction
    export_dir = byod_project / params.paths.export_dir
    files = {p.name for p in export_dir.iterdir()}
    assert {"model.onnx", "scorer.h", "main.c", "scorer.mjs"} <= files
    assert any(name.startswith("model.q") for name in files)
    profile = load_profile(byod_project / params.paths.profile)
    pipeline = load_pipeline(byod_project / params.paths.model)
    release = json.loads((byod_project / "release.json").read_text())
    served = build_exported_model(
        (export_dir / "model.onnx").read_bytes(),
        profile,
        release["threshold"],
        reference_scores(pipeline, profile),
    )
    assert served.self_check_difference <= 1e-9

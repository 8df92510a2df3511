"""`mlgitops data ingest` in a temp git+DVC project: a batch is appended with provenance and
`dvc add`-ed, or refused whole with one line and nothing stored changed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import orjson
import pandas as pd
import pytest

from mlgitops.data.generate import GeneratorConfig, write_dataset
from tests.support.project import make_project, run

ROWS = 3000


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """A project whose split stage has run (the logs path needs the reference profile)."""
    root = make_project(tmp_path_factory.mktemp("ingest") / "repo", rows=ROWS)
    run(["dvc", "repro", "-q", "split"], root)
    return root


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    run(["git", "clone", "-q", str(template), str(root)], tmp_path)
    for name in ("data", "artifacts"):
        run(["cp", "-r", str(template / name), str(root / name)], tmp_path)
    run(["cp", "-r", str(template / ".dvc" / "cache"), str(root / ".dvc" / "cache")], tmp_path)
    return root


def _stored(root: Path) -> dict[str, bytes]:
    """Everything ingest may change, byte for byte."""
    names = ["data/transactions.csv", "data/transactions.provenance.csv", "data.dvc"]
    return {name: (root / name).read_bytes() for name in names if (root / name).exists()}


def _later_rows(root: Path, rows: int = 400, first_id: int = 90_001) -> pd.DataFrame:
    """Rows of a later period with new ids, read as the pipeline reads the dataset."""
    path = root.parent / f"later-{first_id}.csv"
    write_dataset(path, GeneratorConfig(rows=rows, seed=11, first_id=first_id))
    return pd.read_csv(path, keep_default_na=True, dtype=str)


def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def _ingest(root: Path, *args: str):
    return run(["mlgitops", "data", "ingest", *args], root, check=False)


def test_a_batch_file_is_appended_with_provenance_and_dvc_added(project: Path) -> None:
    before = _stored(project)
    batch = _write(_later_rows(project), project.parent / "batch.csv")
    result = _ingest(project, str(batch), "--source", "audit 2025-07", "--summary", "s.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ingested 400 rows")
    data = (project / "data/transactions.csv").read_bytes()
    # The stored rows keep their bytes: the batch is new lines at the end.
    assert data.startswith(before["data/transactions.csv"])
    assert len(pd.read_csv(project / "data/transactions.csv")) == ROWS + 400
    summary = json.loads((project / "s.json").read_text())
    assert (summary["rows_added"], summary["rows_already_stored"]) == (400, 0)
    with (project / "data/transactions.provenance.csv").open() as handle:
        provenance = list(csv.DictReader(handle))
    assert len(provenance) == ROWS + 400
    assert {p["source"] for p in provenance[:ROWS]} == {"initial"}
    assert {(p["source"], p["batch"]) for p in provenance[ROWS:]} == {
        ("audit 2025-07", summary["batch_id"])
    }
    assert provenance[ROWS]["period"] == summary["period"]
    # data.dvc records the new data and DVC sees the workspace as committed.
    assert (project / "data.dvc").read_bytes() != before["data.dvc"]
    status = run(["dvc", "status", "--json", "data.dvc"], project).stdout
    assert json.loads(status) == {}

    # The same batch again: nothing new, nothing rewritten.
    after = _stored(project)
    again = _ingest(project, str(batch))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("nothing new: all 400 rows")
    assert _stored(project) == after


NUMERIC = ("amount", "hour", "account_age_days", "customer_age", "distance_from_home_km",
           "transactions_last_24h", "avg_amount_30d")  # fmt: skip


def _log_lines(rows: pd.DataFrame, features: list[str]) -> bytes:
    lines = []
    for i, row in enumerate(rows.to_dict(orient="records")):
        values = {}
        for name in features:
            value = row[name]
            values[name] = None if pd.isna(value) else value
        for name in NUMERIC:
            values[name] = None if values[name] is None else float(values[name])
        lines.append(
            orjson.dumps(
                {
                    "id": row["transaction_id"],
                    "event_time": row["timestamp"],
                    "request_id": f"r{i // 4}",
                    "row": i % 4,
                    "time": row["timestamp"],
                    "model_version": "fraud-detector:test",
                    "features": values,
                    "score": 0.5,
                    "label": 0,
                }
            )
        )
    return b"\n".join(lines) + b"\n"


FEATURES = [
    "amount", "hour", "account_age_days", "customer_age", "distance_from_home_km",
    "transactions_last_24h", "avg_amount_30d", "merchant_category", "country", "channel",
    "card_type", "device_os",
]  # fmt: skip


def test_a_batch_is_built_from_the_prediction_log_and_labels(project: Path) -> None:
    rows = _later_rows(project, rows=300)
    log = project.parent / "predictions.jsonl"
    log.write_bytes(_log_lines(rows, FEATURES))
    # 200 labelled by id (a labels file); 50 through /feedback (request_id and row); 50 not yet.
    by_id = pd.DataFrame({"id": rows["transaction_id"][:200], "label": rows["is_fraud"][:200]})
    labels = _write(by_id, project.parent / "labels.csv")
    feedback = project.parent / "feedback.jsonl"
    feedback.write_text(
        "".join(
            json.dumps(
                {"request_id": f"r{i // 4}", "row": i % 4, "label": int(rows["is_fraud"][i])}
            )
            + "\n"
            for i in range(200, 250)
        )
    )
    result = _ingest(
        project, "--predictions", str(log), "--labels", str(labels), "--labels", str(feedback)
    )
    assert result.returncode == 0, result.stderr
    assert "ingested 250 rows" in result.stdout
    assert "50 predictions not labelled yet" in result.stdout
    stored = pd.read_csv(project / "data/transactions.csv", dtype=str)
    new = stored.iloc[ROWS:].reset_index(drop=True)
    expected = rows.iloc[:250].reset_index(drop=True)
    assert list(new["transaction_id"]) == list(expected["transaction_id"])
    assert list(new["is_fraud"]) == list(expected["is_fraud"])
    assert list(new["timestamp"]) == list(expected["timestamp"])
    assert list(new["merchant_category"].fillna("")) == list(
        expected["merchant_category"].fillna("")
    )
    assert pd.to_numeric(new["amount"]).tolist() == pd.to_numeric(expected["amount"]).tolist()


def _refused(project: Path, args: list[str], code: int, message: str) -> None:
    before = _stored(project)
    result = _ingest(project, *args)
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert _stored(project) == before


def test_a_batch_with_a_wrong_schema_is_refused(project: Path) -> None:
    rows = _later_rows(project).drop(columns=["amount"])
    batch = _write(rows, project.parent / "no_amount.csv")
    _refused(project, [str(batch)], 19, "columns of the dataset missing from the batch: amount")
    extra = _later_rows(project).assign(note="x")
    _refused(project, [str(_write(extra, project.parent / "extra.csv"))], 19,
             "columns not in the dataset: note")  # fmt: skip


def test_a_value_of_the_wrong_type_is_refused_naming_column_row_and_value(project: Path) -> None:
    rows = _later_rows(project)
    rows.loc[7, "amount"] = "twelve"
    batch = _write(rows, project.parent / "typed.csv")
    _refused(
        project,
        [str(batch)],
        3,
        "column 'amount' is numeric in the schema but holds 'twelve' (row 7)",
    )


def test_duplicate_ids_in_a_batch_are_refused(project: Path) -> None:
    rows = _later_rows(project)
    rows.loc[5, "transaction_id"] = rows.loc[4, "transaction_id"]
    batch = _write(rows, project.parent / "dup.csv")
    _refused(project, [str(batch)], 19, f"id {rows.loc[4, 'transaction_id']!r} appears 2 times")


def test_a_stored_id_with_other_values_is_refused(project: Path) -> None:
    stored = pd.read_csv(project / "data/transactions.csv", dtype=str)
    changed = stored.iloc[[10]].copy()
    changed["is_fraud"] = "1" if changed["is_fraud"].iloc[0] == "0" else "0"
    batch = _write(changed, project.parent / "rewrite.csv")
    _refused(project, [str(batch)], 19, "is stored already with is_fraud=")


def test_labels_for_unknown_ids_are_refused(project: Path) -> None:
    rows = _later_rows(project, rows=50)
    log = project.parent / "predictions.jsonl"
    log.write_bytes(_log_lines(rows, FEATURES))
    labels = pd.DataFrame({"id": [*rows["transaction_id"], "tx_nobody"], "label": [0] * 51})
    path = _write(labels, project.parent / "labels.csv")
    args = ["--predictions", str(log), "--labels", str(path)]
    _refused(project, args, 19, "1 labels for ids not in the prediction log (first: 'tx_nobody')")


def test_conflicting_labels_for_one_id_are_refused(project: Path) -> None:
    rows = _later_rows(project, rows=50)
    log = project.parent / "predictions.jsonl"
    log.write_bytes(_log_lines(rows, FEATURES))
    first = rows["transaction_id"][0]
    labels = pd.DataFrame({"id": [*rows["transaction_id"], first], "label": [0] * 50 + [1]})
    path = _write(labels, project.parent / "labels.csv")
    args = ["--predictions", str(log), "--labels", str(path)]
    _refused(project, args, 19, f"id {first!r} has both labels 0 and 1")


def test_predictions_without_labels_are_refused(project: Path) -> None:
    log = project.parent / "predictions.jsonl"
    log.write_bytes(_log_lines(_later_rows(project, rows=20), FEATURES))
    _refused(project, ["--predictions", str(log)], 19, "--predictions needs --labels")

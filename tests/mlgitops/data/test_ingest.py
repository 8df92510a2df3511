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
    args = ["--predictions", str(log), "--labels", str(labels), "--labels", str(feedback)]
    # The feedback log holds what the service's clients posted: only when allowed.
    _refused(project, args, 19, f"{feedback}: a /feedback log")
    result = _ingest(project, *args, "--allow-feedback-labels")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
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


def _logged(project: Path, rows: int) -> tuple[pd.DataFrame, Path]:
    later = _later_rows(project, rows=rows)
    log = project.parent / "predictions.jsonl"
    log.write_bytes(_log_lines(later, FEATURES))
    return later, log


SET_ASIDE = "reports/ingest/set_aside.csv"


def _set_aside(project: Path) -> list[dict[str, str]]:
    with (project / SET_ASIDE).open() as handle:
        return list(csv.DictReader(handle))


def test_one_unknown_id_is_set_aside_and_the_rest_ingested(project: Path) -> None:
    rows, log = _logged(project, 300)
    labels = pd.DataFrame({"id": [*rows["transaction_id"], "tx_nobody"], "label": [0] * 301})
    path = _write(labels, project.parent / "labels.csv")

    result = _ingest(project, "--predictions", str(log), "--labels", str(path))

    assert result.returncode == 0, result.stderr
    assert result.stderr == f"{path}:302: id 'tx_nobody' is not in the prediction log: set aside\n"
    assert result.stdout.startswith("ingested 300 rows (0 positive)")
    assert result.stdout.endswith(
        f"; 1 of 301 label rows set aside (1 unknown id), listed in {SET_ASIDE}\n"
    )
    assert len(pd.read_csv(project / "data/transactions.csv")) == ROWS + 300
    assert _set_aside(project) == [
        {"source": str(path), "line": "302", "reason": "unknown_id", "id": "tx_nobody",
         "label": "0", "detail": "id 'tx_nobody' is not in the prediction log"}
    ]  # fmt: skip


def test_a_contradicting_id_is_set_aside_with_both_lines_named(project: Path) -> None:
    rows, log = _logged(project, 300)
    first = rows["transaction_id"][0]
    truth = [int(v) for v in rows["is_fraud"]]
    labels = pd.DataFrame({"id": [*rows["transaction_id"], first], "label": [*truth, 1 - truth[0]]})
    path = _write(labels, project.parent / "labels.csv")

    result = _ingest(project, "--predictions", str(log), "--labels", str(path))

    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"{path}:2: id {first!r} labelled {truth[0]} here and {1 - truth[0]} at {path}:302: "
        "set aside",
        f"{path}:302: id {first!r} labelled {1 - truth[0]} here and {truth[0]} at {path}:2: "
        "set aside",
    ]
    assert result.stdout.startswith("ingested 299 rows")
    assert result.stdout.endswith(
        f"; 2 of 301 label rows set aside (1 conflicting id), listed in {SET_ASIDE}\n"
    )
    stored = pd.read_csv(project / "data/transactions.csv", dtype=str)
    assert first not in set(stored["transaction_id"])
    assert [(r["line"], r["reason"]) for r in _set_aside(project)] == [
        ("2", "conflicting"),
        ("302", "conflicting"),
    ]


def test_too_many_set_aside_labels_refuse_the_batch_in_one_line(project: Path) -> None:
    rows, log = _logged(project, 50)
    labels = pd.DataFrame({"id": [*rows["transaction_id"], "tx_nobody"], "label": [0] * 51})
    path = _write(labels, project.parent / "labels.csv")
    args = ["--predictions", str(log), "--labels", str(path)]
    _refused(
        project,
        args,
        19,
        "1 of 51 label rows set aside (1 unknown id): 2.0% is above "
        "ingest.max_set_aside_share 1.0%; the batch is refused (rows listed in "
        f"{SET_ASIDE})",
    )
    assert [r["id"] for r in _set_aside(project)] == ["tx_nobody"]


def _forged_feedback(path: Path, ids: list[str]) -> Path:
    """The review's forgery: one /feedback post per victim transaction, each saying fraud."""
    path.write_text(
        "".join(
            json.dumps({"request_id": "zz", "row": 0, "label": 1, "id": tx,
                        "time": "2025-07-01T00:00:00Z"}) + "\n"
            for tx in ids
        )
    )  # fmt: skip
    return path


def test_the_reviews_400_forged_feedback_labels_are_not_ingested(project: Path) -> None:
    rows, log = _logged(project, 400)
    forged = _forged_feedback(project.parent / "feedback.jsonl", list(rows["transaction_id"]))
    args = ["--predictions", str(log), "--labels", str(forged)]
    # The review: "ingested 400 rows (400 positive)". A feedback log is now refused unless
    # allowed...
    _refused(
        project,
        args,
        19,
        f"{forged}: a /feedback log (JSON lines with request_id and label): its labels are what "
        "the service's clients posted; pass --allow-feedback-labels (or set "
        "ingest.allow_feedback_labels: true in params.yaml) to ingest it",
    )
    # ...and allowed beside the real labels, every forged label that contradicts one is set
    # aside: far beyond the allowed share, so nothing is ingested.
    truth = _write(
        pd.DataFrame({"id": rows["transaction_id"], "label": rows["is_fraud"]}),
        project.parent / "labels.csv",
    )
    contradicted = int((rows["is_fraud"].astype(int) == 0).sum())
    _refused(
        project,
        [*args, "--labels", str(truth), "--allow-feedback-labels"],
        19,
        f"{2 * contradicted} of 800 label rows set aside ({contradicted} conflicting ids): "
        f"{2 * contradicted / 800:.1%} is above ingest.max_set_aside_share 1.0%",
    )


def test_malformed_label_rows_are_set_aside_with_their_line(project: Path) -> None:
    rows, log = _logged(project, 300)
    labels = pd.DataFrame({"id": rows["transaction_id"], "label": ["0"] * 299 + ["maybe"]})
    path = _write(labels, project.parent / "labels.csv")

    result = _ingest(project, "--predictions", str(log), "--labels", str(path))

    assert result.returncode == 0, result.stderr
    assert result.stderr == f"{path}:301: label 'maybe' is not 0 or 1: set aside\n"
    assert result.stdout.startswith("ingested 299 rows")


def test_predictions_without_labels_are_refused(project: Path) -> None:
    log = project.parent / "predictions.jsonl"
    log.write_bytes(_log_lines(_later_rows(project, rows=20), FEATURES))
    _refused(project, ["--predictions", str(log)], 19, "--predictions needs --labels")


def test_a_cut_last_line_in_the_log_is_reported_not_fatal(project: Path) -> None:
    rows, log = _logged(project, 300)
    log.write_bytes(log.read_bytes() + b'{"id": "tx_cut", "features": {"amo')
    path = _write(
        pd.DataFrame({"id": rows["transaction_id"], "label": rows["is_fraud"]}),
        project.parent / "labels.csv",
    )

    result = _ingest(project, "--predictions", str(log), "--labels", str(path))

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ingested 300 rows")
    assert result.stdout.endswith("; prediction logs: 1 malformed line skipped (1 cut last line)\n")

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlgitops.audit.labels import adjudicate, collect, read_export, write_labels
from mlgitops.audit.models import Annotation
from mlgitops.audit.sample import TASKS_CSV, TASKS_JSON, SampleRequest, draw_sample, load_sample
from mlgitops.audit.sample import write_sample as store
from mlgitops.config import AuditConfig
from mlgitops.errors import AuditInputError
from mlgitops.monitoring.logs import ReadStats, read_labels, read_predictions
from tests.mlgitops.audit.conftest import MODEL_VERSION, THRESHOLD
from tests.support import audit


@pytest.fixture
def sample_dir(project) -> Path:
    frame = read_predictions([str(project.log)], audit.profile(), ReadStats())
    request = SampleRequest(
        model_version=MODEL_VERSION, threshold=THRESHOLD, size=200, blind=True, sources=["x"]
    )
    out = project.root / "sample"
    store(out, draw_sample(frame, ["amount", "channel"], request, AuditConfig()))
    return out


@pytest.fixture
def exported(project, sample_dir) -> list[dict]:
    tasks = json.loads((sample_dir / TASKS_JSON).read_text())
    return audit.annotate(tasks, project.truth)


def _expected(exported: list[dict]) -> set[tuple[str, int, str]]:
    found = set()
    for task in exported:
        for annotation in task["annotations"]:
            choice = annotation["result"][0]["value"]["choices"][0]
            label = int(choice == "fraud")
            found.add((task["data"]["record_id"], label, str(annotation["completed_by"])))
    return found


def _import(files, sample_dir):
    design, rows = load_sample(sample_dir)
    return collect({str(f): read_export(f) for f in files}, design, rows)


@pytest.mark.parametrize("kind", ["JSON", "JSON_MIN", "CSV"])
def test_each_label_studio_export_round_trips(kind, sample_dir, exported, tmp_path):
    files = audit.write_exports(exported, tmp_path / "exports")
    annotations, summary = _import([files[kind]], sample_dir)
    assert {(a.id, a.label, a.annotator) for a in annotations} == _expected(exported)
    assert summary.annotators == ["1", "2", "3"]
    assert all(a.annotated_at and a.annotated_at.startswith("2025-07-20") for a in annotations)


def test_the_three_exports_of_one_project_merge_to_one_table(sample_dir, exported, tmp_path):
    files = audit.write_exports(exported, tmp_path / "exports")
    annotations, summary = _import(list(files.values()), sample_dir)
    assert {(a.id, a.label, a.annotator) for a in annotations} == _expected(exported)
    assert summary.duplicates_merged == 2 * len(annotations)


def test_unlabelled_and_cancelled_tasks_are_skipped(sample_dir, exported, tmp_path):
    exported[0]["annotations"] = []
    exported[1]["annotations"][0]["was_cancelled"] = True
    exported[1]["annotations"][0]["result"] = []
    files = audit.write_exports(exported, tmp_path / "exports")
    for kind in ("JSON", "JSON_MIN", "CSV"):
        annotations, summary = _import([files[kind]], sample_dir)
        ids = {a.id for a in annotations}
        assert exported[0]["data"]["record_id"] not in ids
        assert summary.skipped_unlabelled >= (0 if kind == "JSON" else 1)


def test_tables_are_readable_as_monitoring_labels(sample_dir, exported, tmp_path):
    files = audit.write_exports(exported, tmp_path / "exports")
    annotations, _ = _import([files["JSON"]], sample_dir)
    out, decided = tmp_path / "labels" / "audit.csv", tmp_path / "labels" / "audit.adj.csv"
    adjudicated = write_labels(annotations, out, decided)
    assert out.read_text().splitlines()[0] == "id,label,annotator,annotated_at"
    for path, count in ((out, len(annotations)), (decided, len(adjudicated))):
        read = read_labels([str(path)], "is_fraud", "transaction_id", ReadStats())
        assert len(read) == count
        assert set(read["label"]) <= {0.0, 1.0}
    table = read_labels([str(decided)], "is_fraud", None, ReadStats())
    assert dict(zip(table["key"], table["label"], strict=True)) == {
        a.id: float(a.label) for a in adjudicated
    }


def test_majority_adjudication_leaves_ties_out():
    annotations = [
        Annotation(id="a", label=1, annotator="x"),
        Annotation(id="a", label=1, annotator="y"),
        Annotation(id="a", label=0, annotator="z"),
        Annotation(id="b", label=1, annotator="x"),
        Annotation(id="b", label=0, annotator="y"),
        Annotation(id="c", label=0, annotator="x", annotated_at="2025-07-01T00:00:00Z"),
    ]
    decided, ties = adjudicate(annotations)
    assert [(d.id, d.label, d.annotations) for d in decided] == [("a", 1, 3), ("c", 0, 1)]
    assert decided[0].agreement == pytest.approx(2 / 3)
    assert decided[1].label_time == "2025-07-01T00:00:00Z"
    assert ties == ["b"]


def test_the_filled_in_tasks_csv_imports_as_a_plain_file(project, sample_dir, tmp_path):
    lines = (sample_dir / TASKS_CSV).read_text().splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    filled = []
    for row in rows[:20]:
        row[header.index("label")] = "fraud" if project.truth[row[1]] else "legit"
        row[header.index("annotator")] = "dana"
        filled.append(",".join(row))
    path = tmp_path / "filled.csv"
    path.write_text("\n".join([lines[0], *filled, *lines[21:]]) + "\n")
    annotations, summary = _import([path], sample_dir)
    assert len(annotations) == 20
    assert summary.skipped_unlabelled == len(rows) - 20
    assert all(a.label == project.truth[a.id] for a in annotations)


# Bad input: one line naming the file and the problem, and nothing written.


def _plain(tmp_path: Path, text: str, name: str = "labels.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _first_ids(sample_dir: Path, count: int = 2) -> list[str]:
    _, rows = load_sample(sample_dir)
    return [row.id for row in rows[:count]]


def test_bad_input(sample_dir, exported, tmp_path):
    one, two = _first_ids(sample_dir)
    cases = {
        "labelled 0 by 'ann', who labelled it 1": f"id,label,annotator\n{one},1,ann\n{one},0,ann\n",
        "id 'tx_nope' is not in the sample": "id,label,annotator\ntx_nope,1,ann\n",
        "label 'maybe' is not fraud, legit, 0 or 1": f"id,label,annotator\n{one},maybe,ann\n",
        "no 'annotator' column": f"id,label\n{one},1\n",
        f"id '{two}' has no annotator": f"id,label,annotator\n{two},1,\n",
    }
    for message, text in cases.items():
        with pytest.raises(AuditInputError, match=message) as error:
            _import([_plain(tmp_path, text)], sample_dir)
        assert "labels.csv" in str(error.value)
        assert "\n" not in str(error.value)


def test_duplicates_across_files(sample_dir, tmp_path):
    one, _ = _first_ids(sample_dir)
    first = _plain(tmp_path, f"id,label,annotator\n{one},fraud,ann\n", "a.csv")
    same = _plain(tmp_path, f"id,label,annotator\n{one},1,ann\n", "b.csv")
    other = _plain(tmp_path, f"id,label,annotator\n{one},legit,ann\n", "c.csv")
    annotations, summary = _import([first, same], sample_dir)
    assert len(annotations) == 1
    assert summary.duplicates_merged == 1
    with pytest.raises(
        AuditInputError, match=r"c\.csv: line 2: .* by 'ann', who labelled it 1 in .*a\.csv"
    ):
        _import([first, other], sample_dir)


def test_an_export_of_another_project_is_refused(sample_dir, exported, tmp_path):
    other_audit = json.loads(json.dumps(exported))
    for task in other_audit:
        task["data"]["audit"] = "0123456789ab"
    other_fields = json.loads(json.dumps(exported))
    for task in other_fields:
        task["data"]["features"] = {"text": "a review"}
    other_choices = json.loads(json.dumps(exported))
    for task in other_choices:
        for annotation in task["annotations"]:
            annotation["result"][0]["value"]["choices"] = ["Positive"]
    other_control = json.loads(json.dumps(exported))
    for task in other_control:
        for annotation in task["annotations"]:
            annotation["result"][0]["from_name"] = "sentiment"
    cases = [
        (other_audit, "from audit '0123456789ab', not this sample's"),
        (other_fields, "do not match the sample's features"),
        (other_choices, "label 'Positive' is not fraud, legit, 0 or 1"),
        (other_control, "no 'label' choice but sentiment"),
    ]
    for number, (tasks, message) in enumerate(cases):
        files = audit.write_exports(tasks, tmp_path / f"other{number}")
        kinds = ["JSON"] if "sentiment" in message else ["JSON", "JSON_MIN", "CSV"]
        for kind in kinds:
            with pytest.raises(AuditInputError, match=message):
                _import([files[kind]], sample_dir)
    # JSON_MIN and CSV of another control have no 'label' field: nothing labelled at all.
    files = audit.write_exports(other_control, tmp_path / "control")
    with pytest.raises(AuditInputError, match="no labelled annotation"):
        _import([files["JSON_MIN"]], sample_dir)


def test_unreadable_files(sample_dir, tmp_path):
    cases = {
        "broken.json": ("[{", "not valid JSON"),
        "object.json": ('{"a": 1}', "task #1: no 'record_id' in its data"),
        "binary.csv": (b"\xff\xfe\x00garbage", "cannot read"),
        "labels.txt": ("id,label\n", r"not a \.json or \.csv file"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
        with pytest.raises(AuditInputError, match=message):
            _import([path], sample_dir)
    with pytest.raises(AuditInputError, match="cannot read"):
        _import([tmp_path / "missing.json"], sample_dir)

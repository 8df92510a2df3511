from __future__ import annotations

import json

import numpy as np
import pytest

from mlgitops.audit.labels import collect, read_export
from mlgitops.audit.models import Annotation
from mlgitops.audit.report import build_report, markdown, plot_svg
from mlgitops.audit.sample import SampleRequest, draw_sample, load_sample, write_sample
from mlgitops.config import AuditConfig
from mlgitops.monitoring.logs import ReadStats, read_predictions
from tests.mlgitops.audit.conftest import MODEL_VERSION, THRESHOLD
from tests.support import audit


@pytest.fixture
def sampled(project):
    frame = read_predictions([str(project.log)], audit.profile(), ReadStats())
    request = SampleRequest(
        model_version=MODEL_VERSION,
        threshold=THRESHOLD,
        size=300,
        blind=True,
        sources=["x"],
        release_metrics={"precision": 0.1, "fpr": 0.09, "fnr": 0.4},
    )
    out = project.root / "sample"
    write_sample(out, draw_sample(frame, ["amount", "channel"], request, AuditConfig()))
    return load_sample(out)


def _truthful(rows, truth, annotators=("a", "b")) -> list[Annotation]:
    return [
        Annotation(id=r.id, label=truth[r.id], annotator=name) for r in rows for name in annotators
    ]


def test_perfect_annotators_agree_with_each_other_and_the_weights(project, sampled):
    design, rows = sampled
    report = build_report(design, rows, _truthful(rows, project.truth))
    assert report.labelled == 300
    assert report.annotations == 600
    assert not report.ties
    between = report.between_annotators
    assert (between.pairs, between.raw, between.kappa) == (300, 1.0, 1.0)
    # Model vs annotators on the sample: the raw agreement is the share the model got right.
    right = np.mean([r.label == project.truth[r.id] for r in rows])
    assert report.model_vs_annotators.raw == pytest.approx(right)
    by_metric = {e.metric: e for e in report.estimates}
    fraud = by_metric["fraud_rate"]
    assert fraud.low <= project.people.truth.mean() <= fraud.high
    assert by_metric["precision"].release == 0.1
    # Every disagreement listed is one, the most surprising first.
    surprises = [e.surprise for e in report.examples]
    assert surprises == sorted(surprises, reverse=True)
    assert all(e.model_label != next(iter(e.labels.values())) for e in report.examples)


def test_simulated_annotators_measure_their_disagreement(project, sampled, tmp_path):
    design, rows = sampled
    tasks = [
        {"data": {"audit": design.audit_id, "record_id": r.id, "features": json.loads(r.features)}}
        for r in rows
    ]
    exported = audit.annotate(tasks, project.truth, overlap=1.0)
    files = audit.write_exports(exported, tmp_path / "exports")
    annotations, _ = collect({"x": read_export(files["JSON"])}, design, rows)
    report = build_report(design, rows, annotations)
    assert report.between_annotators.pairs == 300
    # Two annotators who err independently disagree on about the sum of their error rates.
    assert 0.85 < report.between_annotators.raw < 0.99
    assert report.between_annotators.kappa < 1.0
    assert [p.annotators for p in report.annotator_pairs] == [("1", "2"), ("1", "3"), ("2", "3")]
    text = markdown(report, "report.svg")
    assert text.startswith(f"# Audit {design.audit_id}: {MODEL_VERSION}")
    for heading in ("## Estimates", "## Score strata", "## Agreement", "## Most surprising"):
        assert heading in text
    assert "![Audited fraud rate per score stratum](report.svg)" in text


def test_ties_are_left_out_and_named(project, sampled):
    design, rows = sampled
    annotations = _truthful(rows, project.truth, ("a",))
    first = rows[0].id
    annotations.append(Annotation(id=first, label=1 - project.truth[first], annotator="b"))
    report = build_report(design, rows, annotations)
    assert report.ties == [first]
    assert report.labelled == 299
    assert f"Tied ids (left out; add an annotator): 1: {first}" in markdown(report)


def test_the_plot_is_a_deterministic_svg_of_every_labelled_stratum(project, sampled):
    design, rows = sampled
    report = build_report(design, rows, _truthful(rows, project.truth))
    first = plot_svg(report)
    assert first.startswith('<svg xmlns="http://www.w3.org/2000/svg" ')
    assert first == plot_svg(report)
    assert first.count("<circle") == sum(1 for s in report.strata if s.labelled)
    assert f"Audit {design.audit_id}" in first

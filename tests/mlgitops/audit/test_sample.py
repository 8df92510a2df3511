from __future__ import annotations

import json
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mlgitops.audit.design import assign, bounded_integers, draw, plan, stratum_edges
from mlgitops.audit.sample import (
    CONFIG_XML,
    SAMPLE_FILE,
    TASKS_CSV,
    TASKS_JSON,
    SampleRequest,
    draw_sample,
    load_sample,
    write_sample,
)
from mlgitops.config import AuditConfig
from mlgitops.errors import AuditInputError
from mlgitops.monitoring.logs import ReadStats, read_predictions
from tests.mlgitops.audit.conftest import MODEL_VERSION, THRESHOLD
from tests.support import audit

FEATURES = ["amount", "channel"]


def _frame(project, log=None):
    return read_predictions([str(log or project.log)], audit.profile(), ReadStats())


def _request(size=300, blind=True, version=MODEL_VERSION):
    return SampleRequest(
        model_version=version, threshold=THRESHOLD, size=size, blind=blind, sources=["log"]
    )


def test_inclusion_probabilities_are_the_design_and_sum_to_the_size(project):
    drawn = draw_sample(_frame(project), FEATURES, _request(), AuditConfig())
    write_sample(project.root / "s", drawn)
    design, rows = load_sample(project.root / "s")
    assert len(rows) == design.sample_size == 300
    # Over every logged prediction the inclusion probabilities sum to the sample size, and
    # the sample's weights 1 / pi to the number of predictions.
    edges = stratum_edges(design.config.score_bands, design.threshold)
    pi = np.array(
        [design.strata[i].inclusion_probability for i in assign(project.people.scores, edges)]
    )
    assert pi.sum() == pytest.approx(300, abs=1e-9)
    assert (pi > 0).all()
    assert sum(1 / r.inclusion_probability for r in rows) == pytest.approx(6000, abs=1e-6)
    assert sum(s.population for s in design.strata) == design.population == 6000
    by_name = {s.name: s for s in design.strata}
    for row in rows:
        stratum = by_name[row.stratum]
        assert row.inclusion_probability == stratum.sampled / stratum.population
        assert stratum.low <= row.score < stratum.high or row.score == stratum.high == 1.0
        assert row.label == int(row.score >= THRESHOLD) == int(stratum.flagged)
    # Every logged prediction could have been drawn: no stratum is left out.
    assert all(s.sampled >= 2 for s in design.strata if s.population >= 2)
    # The let-through share is kept below the threshold, and the near bands are oversampled.
    below = sum(s.sampled for s in design.strata if not s.flagged)
    assert below >= AuditConfig().let_through_share * 300
    near = [s for s in design.strata if s.near_threshold]
    lowest = design.strata[0]
    assert all(s.inclusion_probability > lowest.inclusion_probability for s in near)


def test_a_row_is_drawn_as_often_as_its_inclusion_probability_says(project):
    scores = project.people.scores[:3000]
    config = AuditConfig()
    strata = plan(scores, THRESHOLD, 150, config)
    index = assign(scores, stratum_edges(config.score_bands, THRESHOLD))
    runs = 400
    counts = np.zeros(len(scores))
    for seed in range(runs):
        counts[draw(index, strata, seed)] += 1
    pi = np.array([strata[i].inclusion_probability for i in index])
    # One row of each stratum: its draw count is Binomial(runs, pi).
    for number in range(len(strata)):
        members = np.flatnonzero(index == number)
        if len(members) == 0:
            continue
        row = members[0]
        low, high = stats.binom.ppf([0.0005, 0.9995], runs, pi[row])
        assert low <= counts[row] <= high, (strata[number].name, counts[row], pi[row] * runs)
    assert counts.sum() == runs * 150


def test_same_seed_same_bytes_whatever_the_log_order(project):
    first = draw_sample(_frame(project), FEATURES, _request(), AuditConfig())
    lines = project.log.read_text().splitlines()
    random.Random(3).shuffle(lines)
    shuffled = project.root / "shuffled.jsonl"
    shuffled.write_text("\n".join(lines) + "\n")
    second = draw_sample(_frame(project, shuffled), FEATURES, _request(), AuditConfig())
    assert first.files == second.files
    other = draw_sample(_frame(project), FEATURES, _request(), AuditConfig(seed=7))
    assert other.files[SAMPLE_FILE] != first.files[SAMPLE_FILE]


def test_tasks_are_blind_unless_asked(project):
    blind = draw_sample(_frame(project), FEATURES, _request(), AuditConfig())
    tasks = json.loads(blind.files[TASKS_JSON])
    assert len(tasks) == 300
    assert set(tasks[0]) == {"data"}
    assert set(tasks[0]["data"]) == {"audit", "record_id", "features"}
    assert set(tasks[0]["data"]["features"]) == set(FEATURES)
    assert "score" not in blind.files[TASKS_CSV].splitlines()[0]
    assert '<Choice value="fraud"/>' in blind.files[CONFIG_XML]
    shown = draw_sample(_frame(project), FEATURES, _request(blind=False), AuditConfig())
    task = json.loads(shown.files[TASKS_JSON])[0]
    (prediction,) = task["predictions"]
    assert prediction["model_version"] == MODEL_VERSION
    assert prediction["result"][0]["value"]["choices"][0] in ("fraud", "legit")
    assert "score" in shown.files[TASKS_CSV].splitlines()[0]


def test_a_census_when_the_size_exceeds_the_log(project):
    drawn = draw_sample(_frame(project), FEATURES, _request(size=10_000), AuditConfig())
    assert drawn.design.sample_size == 6000
    assert all(s.sampled == s.population for s in drawn.design.strata)


def test_bad_requests_are_one_line_errors(project):
    frame = _frame(project)
    with pytest.raises(AuditInputError, match="too small for 8 score strata"):
        draw_sample(frame, FEATURES, _request(size=5), AuditConfig())
    with pytest.raises(AuditInputError, match="no prediction of model version 'other'"):
        draw_sample(frame, FEATURES, _request(version="other"), AuditConfig())
    wrong = _request()
    wrong = SampleRequest(**{**wrong.__dict__, "threshold": 0.2})
    with pytest.raises(AuditInputError, match="logged label 1 but score"):
        draw_sample(frame, FEATURES, wrong, AuditConfig())


def test_another_sample_is_not_overwritten(project):
    out = project.root / "s"
    write_sample(out, draw_sample(_frame(project), FEATURES, _request(), AuditConfig()))
    before = (out / SAMPLE_FILE).read_bytes()
    write_sample(out, draw_sample(_frame(project), FEATURES, _request(), AuditConfig()))
    other = draw_sample(_frame(project), FEATURES, _request(), AuditConfig(seed=9))
    with pytest.raises(AuditInputError, match="holds another sample"):
        write_sample(out, other)
    assert (out / SAMPLE_FILE).read_bytes() == before


def test_a_changed_sample_file_is_refused(project):
    out = project.root / "s"
    write_sample(out, draw_sample(_frame(project), FEATURES, _request(), AuditConfig()))
    text = (out / SAMPLE_FILE).read_text()
    (out / SAMPLE_FILE).write_text(text.replace(",1,", ",0,", 1))
    with pytest.raises(AuditInputError, match="changed since"):
        load_sample(out)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 100), st.integers(0, 500)), min_size=1, max_size=12),
    st.floats(0, 1),
)
def test_allocation_respects_every_bound_and_the_size(strata, fraction):
    target = np.array([t for t, _ in strata])
    high = np.array([float(size) for _, size in strata])
    low = np.minimum(high, 2.0)
    n = round(float(low.sum() + fraction * (high.sum() - low.sum())))
    counts = bounded_integers(target, low, high, n)
    assert counts.sum() == n
    assert (counts >= low).all()
    assert (counts <= high).all()

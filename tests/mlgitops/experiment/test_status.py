"""`ab status` on simulated experiments: verdicts a user acts on, matured labels only, SRM."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlgitops.config import ExperimentConfig, ThresholdConfig
from mlgitops.experiment import sequential
from mlgitops.experiment.assign import bucket
from mlgitops.experiment.simulate import Arm, Simulation, simulate
from mlgitops.experiment.status import ExperimentStatus, analyze
from mlgitops.monitoring.logs import ReadStats, parse_predictions, read_labels
from mlgitops.profile import ReferenceProfile

COSTS = ThresholdConfig(policy="fixed", false_positive_cost=5.0, false_negative_cost=120.0)
PROFILE = ReferenceProfile(
    n_rows=0, target="is_fraud", positive_class="1", label_rate=0.0, features={}
)
BETTER = Arm(recall=0.9, version="fraud-detector:challenger")


def _config(**changes: object) -> ExperimentConfig:
    base = {"enabled": True, "challenger": "experiment-v2", "share": 0.5, "min_effect": 100.0}
    return ExperimentConfig(**{**base, **changes})


def _frames(sim: Simulation, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    lines, labels = simulate(sim)
    predictions = parse_predictions(b"\n".join(lines) + b"\n", "sim", PROFILE, ReadStats())
    labels_file = tmp_path / f"labels-{sim.seed}.csv"
    labels.to_csv(labels_file, index=False)
    return predictions, read_labels([str(labels_file)], "is_fraud", "transaction_id", ReadStats())


def _status(sim: Simulation, tmp_path: Path, **changes: object) -> ExperimentStatus:
    predictions, labels = _frames(sim, tmp_path)
    as_of = changes.pop("as_of", None)
    return analyze(predictions, labels, _config(share=sim.share, **changes), COSTS, as_of)


def test_a_better_challenger_is_declared_better(tmp_path: Path) -> None:
    status = _status(Simulation(rows=100_000, challenger=BETTER, seed=1), tmp_path)
    assert status.verdict == "CHALLENGER_BETTER"
    assert status.primary.estimate is not None
    assert status.primary.estimate < 0
    assert status.primary.ci_high is not None
    assert status.primary.ci_high < 0
    assert status.error is None  # exit 0


def test_a_worse_challenger_is_declared_worse(tmp_path: Path) -> None:
    worse = Arm(recall=0.7, version="fraud-detector:challenger")
    status = _status(Simulation(rows=100_000, challenger=worse, seed=2), tmp_path)
    assert status.verdict == "CHAMPION_BETTER"
    assert status.error is not None
    assert status.error.exit_code == 43


def test_too_little_data_says_so_with_a_number_of_frauds(tmp_path: Path) -> None:
    status = _status(Simulation(rows=600, challenger=BETTER, seed=3), tmp_path)
    assert status.verdict == "INSUFFICIENT_DATA"
    assert status.need.more_frauds is not None
    assert status.need.more_frauds > 0
    assert f"about {status.need.more_frauds:,} more labelled frauds" in status.reason
    assert status.error is not None
    assert status.error.exit_code == 42


def test_no_difference_yet_names_the_labels_still_needed(tmp_path: Path) -> None:
    same = Arm(version="fraud-detector:challenger")
    status = _status(Simulation(rows=40_000, challenger=same, seed=4), tmp_path)
    assert status.verdict == "NO_DIFFERENCE_YET"
    assert status.need.more_frauds is not None
    assert status.need.more_frauds > 100
    assert status.error is not None
    assert status.error.exit_code == 41


def test_only_matured_and_arrived_labels_count(tmp_path: Path) -> None:
    sim = Simulation(rows=20_000, days=10.0, seed=5)
    predictions, labels = _frames(sim, tmp_path)
    as_of = pd.Timestamp("2025-07-08T00:00:00Z")
    status = analyze(predictions, labels, _config(label_delay_hours=96.0), COSTS, as_of)
    _lines, raw = simulate(sim)
    events = pd.to_datetime(predictions["event_time"], utc=True)
    arrived = pd.to_datetime(raw.set_index("id")["label_time"], utc=True)
    matured = (events + pd.Timedelta(hours=96) <= as_of) & (
        predictions["key"].map(arrived) <= as_of
    )
    assert sum(arm.matured_labelled for arm in status.arms) == int(matured.sum())
    # Predictions logged after as_of are not in the status at all.
    assert status.rows == int((pd.to_datetime(predictions["time"], utc=True) <= as_of).sum())
    longer = analyze(predictions, labels, _config(label_delay_hours=200.0), COSTS, as_of)
    assert sum(a.matured_labelled for a in longer.arms) < int(matured.sum())


def test_a_guardrail_breach_stops_the_challenger_whatever_its_cost(tmp_path: Path) -> None:
    noisy = Arm(recall=0.9, false_positive_rate=0.05, version="fraud-detector:challenger")
    status = _status(Simulation(rows=60_000, challenger=noisy, seed=6), tmp_path)
    assert status.verdict == "GUARDRAIL_BREACHED"
    guard = status.guardrails[0]
    assert guard.status == "breached"
    assert guard.ci_low is not None
    assert guard.ci_low > 0.005


def test_shadow_mode_pairs_the_rows_and_needs_fewer_labels(tmp_path: Path) -> None:
    slightly = Arm(recall=0.84, version="fraud-detector:challenger")
    sim = Simulation(rows=30_000, mode="shadow", challenger=slightly, seed=7)
    shadow = _status(sim, tmp_path, mode="shadow")
    assert shadow.primary.paired
    assert not shadow.srm.applicable
    assert shadow.verdict == "CHALLENGER_BETTER"
    assert [a.model_versions for a in shadow.arms] == [
        ["fraud-detector:champion"],
        ["fraud-detector:challenger"],
    ]
    # The same models as an A/B on the same number of rows cannot tell yet.
    ab = _status(replace(sim, mode="ab"), tmp_path)
    assert ab.verdict in ("NO_DIFFERENCE_YET", "INSUFFICIENT_DATA")


def test_a_challenger_losing_log_lines_is_an_srm(tmp_path: Path) -> None:
    sim = Simulation(rows=20_000, share=0.2, challenger_lost=0.1, seed=8)
    status = _status(sim, tmp_path)
    assert status.verdict == "SRM"
    assert status.srm.mismatch
    assert status.error is not None
    assert status.error.exit_code == 45


def test_srm_flags_biased_assignment_and_not_fair_assignment() -> None:
    """Many runs of the real hash assignment (a new salt per run): a fair split is flagged at
    about the 0.1% the threshold allows; one whose challenger loses 15% of its units (an arm
    that crashes and logs nothing) nearly always."""
    runs, keys, share = 300, 10_000, 0.2
    fair_flags = biased_flags = 0
    rng = np.random.default_rng(9)
    for run in range(runs):
        salt = f"salt-{run}"
        challenger = np.array([bucket(salt, f"card-{i}") < share for i in range(keys)])
        n_b = int(challenger.sum())
        fair_flags += sequential.srm_test(keys - n_b, n_b, share).p_value < 0.001
        lost = int((rng.random(n_b) < 0.15).sum())
        biased_flags += sequential.srm_test(keys - n_b, n_b - lost, share).p_value < 0.001
    assert fair_flags <= 3  # expected 0.3; P(>3) < 0.4%
    assert biased_flags / runs >= 0.9  # 300 of 2,000 units lost: a shift of 6 standard errors


def test_lines_without_an_arm_are_an_input_error(tmp_path: Path) -> None:
    from mlgitops.errors import ExperimentError

    predictions, labels = _frames(Simulation(rows=500, seed=10), tmp_path)
    predictions["arm"] = None
    with pytest.raises(ExperimentError, match="no prediction carries an arm"):
        analyze(predictions, labels, _config(), COSTS)

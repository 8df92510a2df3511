"""The gate's verdict by simulation (equal models rarely FAIL, degraded ones do), its edge cases,
its guardrail segments and its Markdown."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlgitops.config import GateConfig, ThresholdConfig
from mlgitops.errors import GateError
from mlgitops.gate.compare import against_base, compare
from mlgitops.gate.contender import Contender
from mlgitops.gate.markdown import markdown
from mlgitops.git import resolve_commit
from mlgitops.records import GateReport
from mlgitops.schema import TARGET_COLUMN, FeatureSpec

COSTS = ThresholdConfig(policy="min_expected_cost", false_positive_cost=5, false_negative_cost=120)


class Column:
    """A stand-in pipeline whose score is a column of the frame."""

    def __init__(self, name: str) -> None:
        self.name = name

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        score = frame[self.name].to_numpy()
        return np.column_stack([1 - score, score])


def contender(column: str, threshold: float, digest: str) -> Contender:
    spec = FeatureSpec(name=column, kind="numeric", source="inferred")
    return Contender(Column(column), (spec,), threshold, f"sha256:{digest}", bento_tag=digest)


def simulated_test_set(rng, n=2000, prevalence=0.05, champion=1.3, challenger=1.3, rho=0.7):
    """Scores of two models on one test set: the same signal strength means equal true AUC and
    equal expected cost at the same threshold; rho is how correlated their errors are."""
    labels = (rng.random(n) < prevalence).astype(int)
    shared = rng.normal(size=n)

    def score(signal):
        noise = rho**0.5 * shared + (1 - rho) ** 0.5 * rng.normal(size=n)
        return 1 / (1 + np.exp(-(signal * labels + noise - 3.0)))

    return pd.DataFrame({"old": score(champion), "new": score(challenger), TARGET_COLUMN: labels})


def verdicts(config: GateConfig, runs: int, seed: int, **scenario) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for run in range(runs):
        frame = simulated_test_set(rng, **scenario)
        config_run = config.model_copy(update={"seed": run})
        report = compare(
            frame,
            (),
            contender("old", 0.08, "a"),
            contender("new", 0.08, "b"),
            config_run,
            COSTS,
            "HEAD",
        )
        out.append(report.verdict)
    return out


@pytest.mark.slow
def test_two_equal_models_fail_at_most_alpha_of_the_time():
    runs, alpha = 300, 0.05
    # With the default margins an equal challenger almost never FAILs...
    default = verdicts(GateConfig(bootstrap_reps=400), runs, seed=0)
    assert default.count("FAIL") / runs <= alpha
    # ...and with no margin at all ("not worse", the sharpest case) at most about alpha: each
    # FAIL test errs at alpha/2 and the verdict FAILs if either does (99% binomial slack).
    strict = GateConfig(auc_margin=0.0, cost_margin_per_1000=0.0, bootstrap_reps=400)
    rate = verdicts(strict, runs, seed=1).count("FAIL") / runs
    assert rate <= alpha + 2.33 * np.sqrt(alpha * (1 - alpha) / runs), rate


@pytest.mark.slow
def test_a_degraded_challenger_fails():
    results = verdicts(GateConfig(bootstrap_reps=400), 60, seed=2, challenger=0.4)
    assert results.count("FAIL") / len(results) >= 0.95, results


def reports(config: GateConfig, runs: int, seed: int, **scenario) -> list[GateReport]:
    rng = np.random.default_rng(seed)
    out = []
    for run in range(runs):
        frame = simulated_test_set(rng, **scenario)
        old, new = contender("old", 0.08, "a"), contender("new", 0.08, "b")
        config_run = config.model_copy(update={"seed": run})
        out.append(compare(frame, (), old, new, config_run, COSTS, "HEAD"))
    return out


@pytest.mark.slow
def test_with_margins_at_the_reported_mde_an_equal_challenger_passes_with_the_stated_power():
    pilot = reports(GateConfig(bootstrap_reps=400), 20, seed=5)
    auc_mde = float(np.median([r.roc_auc.mde for r in pilot]))
    cost_mde = float(np.median([r.expected_cost_per_1000.mde for r in pilot]))
    config = GateConfig(auc_margin=auc_mde, cost_margin_per_1000=cost_mde, bootstrap_reps=400)
    runs = reports(config, 100, seed=6)
    for passed in (
        np.mean([r.roc_auc.verdict == "PASS" for r in runs]),
        np.mean([r.expected_cost_per_1000.verdict == "PASS" for r in runs]),
    ):
        # power 0.8, 99% binomial slack for 100 runs (and the MDE itself is estimated).
        assert 0.8 - 2.33 * 0.04 - 0.05 <= passed <= 0.8 + 2.33 * 0.04 + 0.05, passed


def test_the_same_model_passes_with_its_reason():
    frame = simulated_test_set(np.random.default_rng(0))
    report = compare(
        frame, (), contender("old", 0.1, "a"), contender("old", 0.1, "a"), GateConfig(), COSTS, "X"
    )
    assert report.verdict == "PASS"
    assert report.reason == "the challenger is the champion (same model hash)"
    assert report.roc_auc.difference == 0.0


def test_a_champion_that_reads_a_missing_column_is_a_one_line_error():
    frame = simulated_test_set(np.random.default_rng(0)).drop(columns=["old"])
    with pytest.raises(GateError, match="the champion reads columns the test split lacks: old"):
        compare(
            frame,
            (),
            contender("old", 0.1, "a"),
            contender("new", 0.1, "b"),
            GateConfig(),
            COSTS,
            "X",
        )


def test_the_verdict_is_deterministic_and_the_markdown_states_it():
    frame = simulated_test_set(np.random.default_rng(4))
    args = (
        frame,
        (),
        contender("old", 0.08, "a"),
        contender("new", 0.08, "b"),
        GateConfig(),
        COSTS,
    )
    first = compare(*args, "HEAD")
    assert compare(*args, "HEAD") == first
    text = markdown(first)
    assert text.startswith(f"## Champion / challenger gate: **{first.verdict}**")
    assert "| ROC AUC (DeLong) |" in text
    assert f"{first.roc_auc.mde:,.4f}" in text


def _segmented(rng, n=4000, harm_in_b=0.0):
    """An equal pair of models on two segments, the challenger optionally worse in segment b."""
    frame = simulated_test_set(rng, n=n, prevalence=0.08)
    frame["channel"] = np.where(rng.random(n) < 0.5, "a", "b")
    if harm_in_b:
        # In segment b the challenger's score loses its signal: it misses frauds there.
        in_b = (frame["channel"] == "b").to_numpy()
        frame.loc[in_b, "new"] = frame.loc[in_b, "new"] * (1 - harm_in_b) + harm_in_b * 0.01
    return frame


def _guarded(frame, config):
    return compare(
        frame, (), contender("old", 0.08, "a"), contender("new", 0.08, "b"), config, COSTS, "HEAD"
    )


@pytest.mark.slow
def test_segment_guardrails_of_equal_models_fail_at_most_their_alpha():
    runs, alpha = 300, 0.05
    config = GateConfig(
        segments=["channel"], segment_alpha=alpha, cost_margin_per_1000=0.0, bootstrap_reps=400
    )
    rng = np.random.default_rng(11)
    fails = 0
    for run in range(runs):
        report = _guarded(_segmented(rng), config.model_copy(update={"seed": run}))
        assert [g.value for g in report.segments] == ["a", "b"]
        fails += any(g.verdict == "FAIL" for g in report.segments)
    assert fails / runs <= alpha + 2.33 * np.sqrt(alpha * (1 - alpha) / runs), fails


def test_a_challenger_worse_in_one_segment_fails_by_its_guardrail():
    rng = np.random.default_rng(3)
    frame = _segmented(rng, n=6000, harm_in_b=1.0)
    report = _guarded(frame, GateConfig(segments=["channel"], bootstrap_reps=1000))
    by_value = {g.value: g.verdict for g in report.segments}
    assert by_value == {"a": "PASS", "b": "FAIL"}
    assert report.verdict == "FAIL"
    assert "guardrail channel=b: cost per 1,000 worse by more than 100" in report.reason
    assert "| channel=b |" in markdown(report)


def test_small_segments_are_skipped_and_an_unknown_segment_column_is_one_line():
    rng = np.random.default_rng(4)
    frame = _segmented(rng, n=800)
    report = _guarded(frame, GateConfig(segments=["channel"], segment_min_rows=1000))
    assert {g.verdict for g in report.segments} == {"SKIPPED"}
    with pytest.raises(GateError, match="gate.segments: 'device' is not a column of the test"):
        _guarded(frame, GateConfig(segments=["device"]))


def _repo_without_a_release(root: Path) -> str:
    root.mkdir()
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "t@example.com"],
        ["config", "user.name", "t"],
        ["config", "commit.gpgsign", "false"],
        ["commit", "-q", "--allow-empty", "-m", "no release yet"],
    ):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    return resolve_commit(root, "HEAD")


def test_a_base_without_a_release_passes_the_challenger_unopposed(tmp_path):
    """The one rule the gate stage and `report pr` share: no champion at base, no comparison."""
    repo = tmp_path / "repo"
    commit = _repo_without_a_release(repo)
    frame = simulated_test_set(np.random.default_rng(0), n=300)
    challenger = contender("new", 0.08, "b")
    config = GateConfig(auc_margin=0.0, cost_margin_per_1000=0.0)
    report, champion = against_base(repo, "main", commit, frame, (), challenger, config, COSTS)
    assert champion is None
    assert report.verdict == "PASS"
    assert report.reason == "no champion: main has no release (first release)"
    assert report.base == "main"
    assert report.roc_auc is None
    assert report.champion_model_hash is None
    assert report.n_test == 300
    assert report.n_positive == int(frame[TARGET_COLUMN].sum())
    assert markdown(report).startswith("## Champion / challenger gate: **PASS**")

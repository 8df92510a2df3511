from __future__ import annotations

import hashlib
import io

import pandas as pd
import pytest

from mlgitops.data.generate import (
    COLUMNS,
    SCENARIOS,
    GeneratorConfig,
    generate_csv_text,
    write_dataset,
)

# Pinned: the generator must produce these exact bytes on every machine and Python build.
SHA256_2000_ROWS = "cd443a6ab5100f83eab067889f20f3bf1120c5af6087abb9aa480fe9faba0e98"


def test_bytes_are_pinned_across_machines():
    text = generate_csv_text(GeneratorConfig(rows=2000))
    assert hashlib.sha256(text.encode()).hexdigest() == SHA256_2000_ROWS


def test_streamed_file_equals_in_memory_text(tmp_path):
    path = tmp_path / "d.csv"
    write_dataset(path, GeneratorConfig(rows=500, seed=3))
    assert path.read_text() == generate_csv_text(GeneratorConfig(rows=500, seed=3))


def test_default_data_is_realistic():
    frame = pd.read_csv(io.StringIO(generate_csv_text(GeneratorConfig())))
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == 50_000
    assert 0.01 <= frame["is_fraud"].mean() <= 0.03
    assert frame["timestamp"].is_monotonic_increasing
    # Some gaps, as a real feed has.
    for column in ("customer_age", "distance_from_home_km", "avg_amount_30d", "device_os"):
        assert 0.0 < frame[column].isna().mean() < 0.6
    assert frame["merchant_category"].nunique() == 12


def test_different_seeds_differ():
    assert generate_csv_text(GeneratorConfig(rows=50, seed=1)) != generate_csv_text(
        GeneratorConfig(rows=50, seed=2)
    )


def _frame(config: GeneratorConfig) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(generate_csv_text(config)))


def test_scenario_none_draws_the_default_numbers():
    assert generate_csv_text(GeneratorConfig(rows=300, scenario="none")) == generate_csv_text(
        GeneratorConfig(rows=300)
    )


def test_scenarios_are_deterministic_and_do_what_they_say():
    base = _frame(GeneratorConfig(rows=4000, seed=9))
    shifted = _frame(GeneratorConfig(rows=4000, seed=9, scenario="covariate_shift"))
    assert shifted["amount"].median() > 1.6 * base["amount"].median()
    new = _frame(GeneratorConfig(rows=4000, seed=9, scenario="new_category"))
    assert 0.06 < (new["merchant_category"] == "bnpl").mean() < 0.10
    broken = _frame(GeneratorConfig(rows=4000, seed=9, scenario="broken_feature"))
    assert broken["distance_from_home_km"].isna().all()
    drift = _frame(GeneratorConfig(rows=4000, seed=9, scenario="concept_drift"))
    assert drift.drop(columns="is_fraud").equals(base.drop(columns="is_fraud"))
    assert not drift["is_fraud"].equals(base["is_fraud"])
    for scenario in SCENARIOS:
        config = GeneratorConfig(rows=200, seed=4, scenario=scenario)
        assert generate_csv_text(config) == generate_csv_text(config)


def test_later_periods_continue_the_ids():
    frame = _frame(GeneratorConfig(rows=3, first_id=50_001))
    assert frame["transaction_id"].tolist() == ["tx_00050001", "tx_00050002", "tx_00050003"]


def test_unknown_scenario_is_refused():
    with pytest.raises(ValueError, match="unknown scenario 'drift'"):
        GeneratorConfig(scenario="drift")

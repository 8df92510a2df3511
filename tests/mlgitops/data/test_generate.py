from __future__ import annotations

import hashlib
import io

import pandas as pd

from mlgitops.data.generate import COLUMNS, GeneratorConfig, generate_csv_text, write_dataset

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

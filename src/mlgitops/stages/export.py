"""Stage `export`: the pipeline as ONNX, a quantized model, a pruned ensemble, C and JS scorers.

Every artifact is checked on the test split before it is written (mlgitops.export.build); a
failed check fails the stage with one line and leaves the old artifacts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlgitops.config import Params
from mlgitops.errors import DataQualityError
from mlgitops.export.build import build
from mlgitops.io import atomic_write, load_pipeline
from mlgitops.records import load_metrics, save_record
from mlgitops.schema import TARGET_COLUMN, load_schema


def run(params: Params) -> str:
    schema = load_schema(params.paths.schema_file)
    test = pd.read_parquet(params.paths.test)
    labels = test[TARGET_COLUMN].to_numpy().astype(int)
    if len(np.unique(labels)) < 2:
        raise DataQualityError(f"{params.paths.test}: the test split has a single class")
    pipeline = load_pipeline(params.paths.model)
    threshold = load_metrics(params.paths.metrics).threshold
    exported = build(
        pipeline, test[schema.feature_names], labels, threshold, params.export, params.threshold
    )
    files, record = exported.files, exported.metrics

    out_dir = Path(params.paths.export_dir)
    for name, blob in files.items():
        atomic_write(out_dir / name, lambda tmp, blob=blob: tmp.write_bytes(blob))
    for stale in out_dir.iterdir():
        if stale.is_file() and stale.name not in files and stale.name != ".gitignore":
            stale.unlink()
    save_record(record, params.paths.export_metrics)
    summary = [f"{record.model_type}: {len(files)} files in {out_dir}"]
    if record.onnx:
        summary.append(f"ONNX max |Δ| {record.onnx.max_abs_delta_score:.2g}")
    if record.quantized:
        summary.append(
            f"int{record.quantized.bits} {record.quantized.flipped_fraction:.3%} flipped, "
            f"{record.quantized.gzip_ratio_vs_float:.2f}x gzip size"
        )
    if record.pruned:
        summary.append(f"pruned {record.pruned.trees_kept}/{record.pruned.trees_total} trees")
    return ", ".join(summary)

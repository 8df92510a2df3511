"""Stage `tune`: a seeded random search over the model's hyperparameters (and optionally its
family), scored by cross-validation on the training split only (mlgitops.modeling.search).

Its choice is what stage `train` fits when `tune.enabled`; the trials' history is for
`dvc plots`.
"""

from __future__ import annotations

import json

import pandas as pd

from mlgitops.config import Params
from mlgitops.io import atomic_write_text
from mlgitops.modeling.search import history, tune
from mlgitops.records import save_headline, save_record, tune_headline
from mlgitops.schema import load_schema


def run(params: Params) -> str:
    schema = load_schema(params.paths.schema_file)
    train = pd.read_parquet(params.paths.train)
    record, trials = tune(train, schema, params.train, params.tune)
    save_record(record, params.paths.tuned_params)
    save_headline(tune_headline(record), params.paths.headline_tune)
    atomic_write_text(params.paths.tune_trials, json.dumps(history(trials, record.better)) + "\n")
    if not record.enabled:
        return "off (tune.enabled: false): train fits params.yaml's train config"
    chosen = record.train["model"]
    note = " (stopped by tune.max_seconds)" if record.stopped_by_time else ""
    return (
        f"{record.n_trials} trials{note}, {record.cv_folds} {record.folds} folds on "
        f"{record.n_rows_searched} rows: best {chosen} (trial {record.best_trial}) "
        f"CV {record.objective} {record.cv_score:.5f} "
        f"(params.yaml's: {record.baseline_cv_score:.5f})"
    )

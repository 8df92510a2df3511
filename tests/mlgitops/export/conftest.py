from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlgitops.config import Params
from mlgitops.io import load_pipeline
from mlgitops.schema import TARGET_COLUMN
from tests.support.project import params_in, write_small_dataset

MODEL_TYPES = ["hist_gradient_boosting", "random_forest", "logistic_regression"]


@dataclass(frozen=True)
class Trained:
    params: Params
    pipeline: Any
    test: pd.DataFrame  # the test split, plus rows with unseen and missing values
    threshold: float

    def reference(self) -> np.ndarray:
        return self.pipeline.predict_proba(self.test[list(self.pipeline.feature_names_in_)])[:, 1]

    def labels(self) -> np.ndarray:
        return self.test[TARGET_COLUMN].to_numpy().astype(int)


def _with_edge_rows(test: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    # Every feature unseen (categorical) or missing, in turn: what a client can send.
    edge = test.head(2 * len(features)).copy().reset_index(drop=True)
    for i, name in enumerate(features):
        categorical = edge[name].dtype == object
        edge.loc[2 * i, name] = "never-seen" if categorical else np.nan
        edge.loc[2 * i + 1, name] = np.nan
    return pd.concat([test, edge], ignore_index=True)


@pytest.fixture(scope="session", params=MODEL_TYPES)
def trained(request, tmp_path_factory) -> Trained:
    from mlgitops.stages import evaluate, gate, rules, score_reference, split, train, validate

    root: Path = tmp_path_factory.mktemp(request.param)
    # A high min_frequency so infrequent grouping is exercised by every test.
    params = params_in(root, train={"model": request.param, "min_category_frequency": 150})
    write_small_dataset(params.data.path)
    # Through the monitoring stages (package ships their reference and rules) and the gate
    # (package releases only a model it passed; gate.base is null here: "gate off").
    for stage in (validate, split, train, evaluate, score_reference, gate, rules):
        stage.run(params)
    pipeline = load_pipeline(params.paths.model)
    test = pd.read_parquet(params.paths.test)
    test = _with_edge_rows(test, list(pipeline.feature_names_in_))
    import json

    threshold = json.loads(Path(params.paths.metrics).read_text())["threshold"]
    return Trained(params, pipeline, test, threshold)

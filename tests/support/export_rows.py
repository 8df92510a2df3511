"""Reading the export's rows.csv back as the pipeline's input, and the C scorer's output."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd


def read_rows_csv(text: str, categorical: list[str]) -> pd.DataFrame:
    """rows.csv as main.c reads it: an empty field is missing, categories are text as written."""
    return pd.read_csv(
        io.StringIO(text),
        dtype=dict.fromkeys(categorical, object),
        keep_default_na=False,
        na_values=[""],
    )


def scorer_output(text: str) -> tuple[np.ndarray, np.ndarray]:
    """The C scorer's "score,decision" lines as scores and decisions."""
    pairs = [line.split(",") for line in text.splitlines()]
    return np.array([float(s) for s, _ in pairs]), np.array([d == "1" for _, d in pairs])

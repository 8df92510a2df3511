"""Stage `validate`: decide the training schema and check the data's quality.

Declared column types (params.yaml `data.column_types`) are enforced; undeclared ones are
inferred (mlgitops.data.validation). Anything that would make training meaningless stops the
pipeline with a DataError naming the file, the column and the value, before any artifact is
written.
"""

from __future__ import annotations

from mlgitops.config import Params
from mlgitops.data.dataset import open_dataset
from mlgitops.data.validation import validate_frame
from mlgitops.engine import running
from mlgitops.io import save_model_json


def run(params: Params) -> str:
    data = params.data
    # Partition by partition on the engine (a file or a directory of Parquet files); the report
    # and the schema are the same bytes for any partitioning and any engine.
    with running(params.engine):
        frame = open_dataset(data)
        schema, report = validate_frame(frame, data, params.validate_, str(data.path))
    # Both files are written only after every check passed.
    save_model_json(report, params.paths.validation_report)
    save_model_json(schema, params.paths.schema_file)
    return (
        f"{report.n_rows} rows, {report.n_features} features, "
        f"label rate {report.label_rate:.2%}, report in {params.paths.validation_report}"
    )

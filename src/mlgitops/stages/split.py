"""Stage `split`: train/validation/test split and the reference profile of the training split.

The split's roles and rules are mlgitops.data.split's. The profile (mlgitops.profile) records
what "normal" input looks like; serving and monitoring compare live traffic against it.
"""

from __future__ import annotations

from mlgitops.config import Params
from mlgitops.data.dataset import open_dataset
from mlgitops.data.split import split_frame
from mlgitops.engine import running
from mlgitops.io import atomic_write, save_model_json
from mlgitops.profiling import build_profile
from mlgitops.schema import TARGET_COLUMN, load_schema


def run(params: Params) -> str:
    schema = load_schema(params.paths.schema_file)
    # The split itself still needs the whole table in memory (its time cutoffs and stratified
    # draw are pandas'); a directory of Parquet files is read through the one reader.
    with running(params.engine):
        table = open_dataset(params.data).compute()
    train, validation, test = split_frame(table, schema, params.split, str(params.data.path))
    profile = build_profile(
        train[schema.feature_names], train[TARGET_COLUMN].to_numpy(), schema, params.split
    )
    outputs = (
        (params.paths.train, train),
        (params.paths.validation, validation),
        (params.paths.test, test),
    )
    for path, part in outputs:
        atomic_write(path, lambda tmp, part=part: part.to_parquet(tmp, index=False))
    save_model_json(profile, params.paths.profile)
    how = f"by {schema.time_column}" if schema.time_column else "stratified"
    return (
        f"{len(train)} train / {len(validation)} validation / {len(test)} test rows ({how}), "
        f"train label rate "
        f"{profile.label_rate:.2%}, profile in {params.paths.profile}"
    )

"""`mlgitops audit sample`: a stratified sample of logged predictions and the tasks to label it.

`draw_sample` is pure (a frame of predictions in, the artifacts' contents out);
`write_sample` stores them in a directory, refusing to replace a different sample there:
annotators may be labelling its tasks already.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlgitops.audit import labelstudio
from mlgitops.audit.design import assign, draw, plan, stratum_edges
from mlgitops.audit.models import SampleDesign, SampleRow
from mlgitops.config import AuditConfig
from mlgitops.errors import ArtifactError, AuditInputError, MonitoringInputError, validation_line
from mlgitops.io import atomic_write_text, read_json
from mlgitops.logline import entity_keys
from mlgitops.monitoring.logs import (
    KEY,
    LABEL,
    REQUEST_KEY,
    SCORE,
    TIME,
    VERSION,
    ReadStats,
    no_valid_lines,
    read_predictions,
)
from mlgitops.profile import ReferenceProfile

SAMPLE_FILE, DESIGN_FILE = "sample.csv", "design.json"
TASKS_CSV, TASKS_JSON, CONFIG_XML = "tasks.csv", "tasks.label_studio.json", "label_config.xml"
SAMPLE_COLUMNS = list(SampleRow.model_fields)


@dataclass(frozen=True)
class SampleRequest:
    model_version: str
    threshold: float
    size: int
    blind: bool
    sources: list[str]
    malformed_lines: int = 0
    release_metrics: dict[str, float] | None = None


@dataclass(frozen=True)
class SampleFiles:
    """The contents of the sample directory, file name -> text."""

    design: SampleDesign
    files: dict[str, str]


def _jsonable(value: object) -> object:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_log(sources: list[str], profile: ReferenceProfile) -> tuple[pd.DataFrame, ReadStats]:
    """The logged predictions to sample, and how the read went. A log that cannot be read, or
    holds no valid prediction line, is unusable audit input (exit 27), named with its lines."""
    stats = ReadStats()
    try:
        frame = read_predictions(sources, profile, stats)
    except MonitoringInputError as error:
        raise AuditInputError(str(error)) from None
    if frame.empty:
        raise AuditInputError(no_valid_lines(sources, stats))
    return frame, stats


def population(
    frame: pd.DataFrame, features: list[str], model_version: str, threshold: float
) -> tuple[pd.DataFrame, int, int]:
    """The predictions of `model_version`, one per id (the latest), in id order; with the
    number of rows of other versions and of repeated ids left out."""
    versions = frame[VERSION].fillna("")
    mine = frame[versions == model_version]
    if mine.empty:
        found = ", ".join(sorted(set(versions) - {""})[:5]) or "none"
        raise AuditInputError(
            f"no prediction of model version {model_version!r} in the logs (found: {found}); "
            "pass --model-version"
        )
    other = len(frame) - len(mine)
    ids = entity_keys(mine[KEY], mine[REQUEST_KEY]).astype(str)
    table = pd.DataFrame(
        {
            "id": ids.to_numpy(),
            "request_key": mine[REQUEST_KEY].to_numpy(),
            "time": mine[TIME].to_numpy(),
            "score": mine[SCORE].to_numpy(dtype=float),
            "logged": mine[LABEL].to_numpy(dtype=float),
        }
    )
    for name in features:
        table[name] = mine[name].to_numpy()
    table = table.sort_values(["id", "time", "request_key"], kind="stable")
    unique = table.drop_duplicates("id", keep="last").reset_index(drop=True)
    decision = (unique["score"] >= threshold).astype(int)
    logged = unique["logged"]
    wrong = logged.notna() & (logged != decision)
    if wrong.any():
        row = unique[wrong].iloc[0]
        raise AuditInputError(
            f"id {row['id']}: logged label {int(row['logged'])} but score {row['score']:.6g} "
            f"against threshold {threshold:.6g} says {int(decision[wrong].iloc[0])}: "
            "scored with another threshold? (pass the matching --model-version)"
        )
    unique["label"] = decision
    return unique, other, len(table) - len(unique)


def _csv(rows: list[list[object]], header: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def draw_sample(
    frame: pd.DataFrame, features: list[str], request: SampleRequest, config: AuditConfig
) -> SampleFiles:
    """The sample of `frame` (read_predictions' columns) and its tasks, as file contents."""
    table, other, duplicates = population(frame, features, request.model_version, request.threshold)
    scores = table["score"].to_numpy()
    strata = plan(scores, request.threshold, request.size, config)
    index = assign(scores, stratum_edges(config.score_bands, request.threshold))
    picked = table.iloc[draw(index, strata, config.seed)].copy()
    picked["stratum"] = index[picked.index]
    rows, task_rows, tasks = [], [], []
    feature_dicts = [
        {name: _jsonable(value) for name, value in zip(features, values, strict=True)}
        for values in picked[features].itertuples(index=False, name=None)
    ]
    for record, values in zip(picked.itertuples(index=False), feature_dicts, strict=True):
        stratum = strata[record.stratum]
        request_id, _, row = str(record.request_key).rpartition(":")
        rows.append(
            [
                record.id,
                request_id or "",
                row if request_id else "",
                repr(float(record.score)),
                int(record.label),
                stratum.name,
                repr(stratum.inclusion_probability),
                json.dumps(values, separators=(",", ":")),
            ]
        )
    sample_text = _csv(rows, SAMPLE_COLUMNS)
    audit_id = hashlib.sha256(sample_text.encode()).hexdigest()[:12]
    shown = not request.blind
    for record, values in zip(picked.itertuples(index=False), feature_dicts, strict=True):
        prediction = (
            (request.model_version, float(record.score), int(record.label)) if shown else None
        )
        tasks.append(labelstudio.task(audit_id, record.id, values, prediction))
        shown_columns = [repr(float(record.score)), int(record.label)] if shown else []
        task_rows.append(
            [audit_id, record.id, "", "", *shown_columns, *(_cell(values[f]) for f in features)]
        )
    header = ["audit", "id", "label", "annotator", *(["score", "model_label"] if shown else [])]
    design = SampleDesign(
        audit_id=audit_id,
        model_version=request.model_version,
        threshold=request.threshold,
        release_metrics=request.release_metrics or {},
        seed=config.seed,
        sample_size=len(rows),
        population=len(table),
        blind=request.blind,
        sources=list(request.sources),
        malformed_lines=request.malformed_lines,
        duplicate_ids=duplicates,
        other_versions=other,
        features=features,
        config=config,
        strata=strata,
    )
    files = {
        SAMPLE_FILE: sample_text,
        TASKS_CSV: _csv(task_rows, [*header, *features]),
        TASKS_JSON: json.dumps(tasks, indent=1) + "\n",
        CONFIG_XML: labelstudio.label_config(),
        DESIGN_FILE: design.model_dump_json(indent=2) + "\n",
    }
    return SampleFiles(design, files)


def _cell(value: object) -> object:
    return "" if value is None else value


def write_sample(out_dir: Path, sample: SampleFiles) -> None:
    """Write the files; a directory holding another sample is left alone (an error)."""
    out_dir = Path(out_dir)
    existing = out_dir / SAMPLE_FILE
    if existing.exists() and existing.read_text(encoding="utf-8") != sample.files[SAMPLE_FILE]:
        raise AuditInputError(
            f"{existing}: holds another sample (its tasks may be out for labelling); "
            "choose another --out or remove it"
        )
    # The design last: a directory with design.json is complete.
    for name in sorted(sample.files, key=lambda n: n == DESIGN_FILE):
        atomic_write_text(out_dir / name, sample.files[name])


def load_sample(directory: Path) -> tuple[SampleDesign, list[SampleRow]]:
    """The design and rows of a sample directory, checked against each other."""
    from pydantic import ValidationError

    directory = Path(directory)
    design_file, sample_file = directory / DESIGN_FILE, directory / SAMPLE_FILE
    if not design_file.exists() or not sample_file.exists():
        raise AuditInputError(
            f"{directory}: not a sample directory (no {DESIGN_FILE} or {SAMPLE_FILE}; "
            "run `mlgitops audit sample`)"
        )
    try:
        design = SampleDesign.model_validate(read_json(design_file))
    except ValidationError as error:
        raise AuditInputError(f"{design_file}: {validation_line(error)}") from None
    except ArtifactError as error:  # not JSON: bad input of this command
        raise AuditInputError(str(error)) from None
    text = sample_file.read_text(encoding="utf-8")
    if hashlib.sha256(text.encode()).hexdigest()[:12] != design.audit_id:
        raise AuditInputError(
            f"{sample_file}: changed since `mlgitops audit sample` wrote it "
            f"(audit {design.audit_id})"
        )
    rows = []
    for number, record in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        values = {k: (v if v != "" else None) for k, v in record.items()}
        try:
            rows.append(SampleRow.model_validate(values))
        except ValidationError as error:
            raise AuditInputError(f"{sample_file}:{number}: {validation_line(error)}") from None
    return design, rows

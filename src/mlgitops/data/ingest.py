"""`mlgitops data ingest`: append a labelled batch to the dataset that `data.dvc` tracks.

A batch comes from a file in the dataset's columns, or is built from the prediction log joined
with labels (the feedback log, a labels file, audited labels): the logged features are what the
model saw, the entity id and the event time come from the log, the label from the labels.

Labels are untrusted input. A label row for an id the prediction log does not hold, the rows of
an id labelled both 0 and 1, and a row without a 0/1 label or an id are set aside one by one
(file and line, listed in `paths.ingest_set_aside`) and the rest is ingested, as long as the set
aside rows are at most `ingest.max_set_aside_share` of the label rows read; beyond it the batch
is refused. The service's /feedback log (JSON lines with `request_id` and `label`) holds what its
clients posted: it is ingested only when allowed (`ingest.allow_feedback_labels`).

Every new row gets a provenance line (source, period, batch) in the sidecar
`DataConfig.provenance_path`. Rows whose id is already stored with the same values are skipped, so
ingesting a batch twice adds nothing; an id stored with other values is refused (ingest never
rewrites history). The combined table is validated exactly as stage `validate` validates, and
only then replaces the dataset (atomically; a CSV dataset keeps its bytes and gains lines at the
end). A bad batch is refused whole: nothing stored changes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field

from mlgitops import git
from mlgitops.config import DataConfig, IngestConfig, Params
from mlgitops.data.prepare import to_category, to_numeric
from mlgitops.data.table import read_table
from mlgitops.data.validation import check_time_column, validate_table
from mlgitops.dvcrun import run_dvc
from mlgitops.errors import IngestError
from mlgitops.profile import normalize_category
from mlgitops.schema import TrainingSchema

PROVENANCE_FIELDS = ("id", "source", "period", "batch")
# Provenance of the rows stored before the first ingest.
INITIAL_SOURCE = "initial"


class IngestRequest(BaseModel):
    """What to ingest: `batch` files, or `predictions` joined with `labels`."""

    model_config = ConfigDict(frozen=True)

    batch: tuple[str, ...] = ()
    predictions: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    source: str | None = None
    dvc_add: bool = True
    allow_feedback_labels: bool = False  # or ingest.allow_feedback_labels in params.yaml
    set_aside_path: Path | None = None  # default: paths.ingest_set_aside


SetAsideReason = Literal["unknown_id", "conflicting", "malformed"]
SET_ASIDE_FIELDS = ("source", "line", "reason", "id", "label", "detail")
# Set-aside rows printed one by one; the rest are in the set-aside file.
SHOWN_SET_ASIDE = 20


class SetAside(BaseModel):
    """A label row left out of the batch, where it was read and why."""

    model_config = ConfigDict(frozen=True)

    source: str
    line: int  # the line of a text file, the row of a Parquet file
    reason: SetAsideReason
    id: str | None
    label: str | None
    detail: str

    def line_text(self) -> str:
        from mlgitops.monitoring.logs import location

        return f"{location(self.source, self.line)}: {self.detail}: set aside"


class IngestSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    data_path: str
    provenance_path: str
    batch_id: str | None  # sha256 (12 hex) of the appended rows; None when nothing was new
    source: str
    period: str | None  # ISO 8601 interval of the new rows' event times
    rows_before: int
    rows_in_batch: int
    rows_added: int
    rows_already_stored: int
    positives_added: int
    unlabelled_predictions: int = 0
    predictions_without_id: int = 0
    columns_not_logged: list[str] = Field(default_factory=list)
    dvc_file: str | None = None
    label_rows: int = 0
    labels_set_aside: int = 0
    unknown_ids: int = 0
    conflicting_ids: int = 0
    malformed_labels: int = 0
    set_aside_file: str | None = None
    # What the reader left out of the prediction logs (cut lines, cut archives...).
    input_notes: list[str] = Field(default_factory=list)

    def line(self) -> str:
        if not self.rows_added:
            text = (
                f"nothing new: all {self.rows_in_batch} rows of the batch are stored already "
                f"in {self.data_path}"
            )
        else:
            text = (
                f"ingested {self.rows_added} rows ({self.positives_added} positive) from "
                f"{self.source} into {self.data_path} ({self.rows_before} -> "
                f"{self.rows_before + self.rows_added} rows), period {self.period or 'unknown'}, "
                f"batch {self.batch_id}; {self.rows_already_stored} already stored"
                + (
                    f", {self.unlabelled_predictions} predictions not labelled yet"
                    if self.unlabelled_predictions
                    else ""
                )
            )
        if self.labels_set_aside:
            counts = _set_aside_counts(
                self.labels_set_aside,
                self.label_rows,
                self.unknown_ids,
                self.conflicting_ids,
                self.malformed_labels,
            )
            text += f"; {counts}, listed in {self.set_aside_file}"
        return text + "".join(f"; {note}" for note in self.input_notes)


def _set_aside_counts(rows: int, total: int, unknown: int, conflicting: int, malformed: int) -> str:
    parts = [
        f"{unknown} unknown id{'s' if unknown != 1 else ''}" if unknown else "",
        f"{conflicting} conflicting id{'s' if conflicting != 1 else ''}" if conflicting else "",
        f"{malformed} malformed" if malformed else "",
    ]
    return (
        f"{rows} of {total} label row{'s' if total != 1 else ''} set aside "
        f"({', '.join(p for p in parts if p)})"
    )


# Reading a batch ---------------------------------------------------------------------------


def _format_of(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".txt")):
        return "csv"
    raise IngestError(f"{path}: unsupported batch file type (use .csv or .parquet)")


def read_batch_files(files: Sequence[str], columns: list[str]) -> pd.DataFrame:
    """The rows of `files`, which must have exactly the dataset's `columns`."""
    frames = []
    for name in files:
        path = Path(name)
        table = read_table(path, _format_of(path))  # type: ignore[arg-type]
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise IngestError(
                f"{path}: columns of the dataset missing from the batch: {', '.join(missing)}"
            )
        extra = [str(c) for c in table.columns if c not in columns]
        if extra:
            raise IngestError(f"{path}: columns not in the dataset: {', '.join(extra)}")
        frames.append(table[columns])
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _class_values(stored_target: pd.Series, positive: str) -> tuple[str, str]:
    """(negative, positive) spelled as the stored target spells them."""
    classes = sorted(set(to_category(stored_target).dropna()))
    negative = [c for c in classes if c != positive]
    if len(negative) != 1:
        raise IngestError(f"the stored target has classes {classes}; expected two")
    return negative[0], positive


class LogBatch(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    frame: pd.DataFrame
    unlabelled: int
    without_id: int
    not_logged: list[str]
    label_rows: int = 0  # label rows read, set-aside ones included
    set_aside: list[SetAside] = Field(default_factory=list)
    input_notes: list[str] = Field(default_factory=list)


def _feedback_refused(url: str) -> IngestError:
    return IngestError(
        f"{url}: a /feedback log (JSON lines with request_id and label): its labels are what the "
        "service's clients posted; pass --allow-feedback-labels (or set "
        "ingest.allow_feedback_labels: true in params.yaml) to ingest it"
    )


def _shown_id(value: object) -> str:
    return repr(value) if isinstance(value, str) else repr(str(value))


def _unknown(given: pd.DataFrame, unknown: np.ndarray) -> list[SetAside]:
    from mlgitops.logline import split_request_key
    from mlgitops.monitoring import logs

    rows = np.flatnonzero(unknown)
    columns = (logs.KEY, logs.REQUEST_KEY, logs.SOURCE, logs.LINE, logs.LABEL)
    ids, requests, sources, lines, labels = (given[c].to_numpy()[rows] for c in columns)
    out = []
    for key, request, source, line, label in zip(
        ids, requests, sources, lines, labels, strict=True
    ):
        if pd.notna(key):
            detail, shown = f"id {_shown_id(key)} is not in the prediction log", str(key)
        else:
            request_id, number = split_request_key(str(request))
            detail = f"request {request_id!r} row {number} is not in the prediction log"
            shown = str(request)
        out.append(
            SetAside(
                source=source,
                line=int(line),
                reason="unknown_id",
                id=shown,
                label=str(int(label)),
                detail=detail,
            )
        )
    return out


def _conflicting(given: pd.DataFrame, keys: pd.Series, mask: np.ndarray) -> list[SetAside]:
    """The `mask`ed rows (of ids labelled both 0 and 1), each naming where the other label is."""
    from mlgitops.monitoring import logs

    labelled = pd.DataFrame({"key": keys.to_numpy(), "truth": given[logs.LABEL].to_numpy()})
    out = []
    where = [
        logs.location(s, int(n)) for s, n in zip(given[logs.SOURCE], given[logs.LINE], strict=True)
    ]
    rows_of: dict[object, list[int]] = {}
    for i in np.flatnonzero(mask):
        rows_of.setdefault(labelled["key"].iloc[i], []).append(int(i))
    for key, rows in rows_of.items():
        for i in rows:
            mine = int(labelled["truth"].iloc[i])
            others = [j for j in rows if int(labelled["truth"].iloc[j]) != mine]
            shown = ", ".join(where[j] for j in others[:3])
            more = f" and {len(others) - 3} more" if len(others) > 3 else ""
            out.append(
                SetAside(
                    source=given[logs.SOURCE].iloc[i],
                    line=int(given[logs.LINE].iloc[i]),
                    reason="conflicting",
                    id=str(key),
                    label=str(mine),
                    detail=f"id {_shown_id(key)} labelled {mine} here and {1 - mine} at "
                    f"{shown}{more}",
                )
            )
    return out


def batch_from_logs(
    predictions: Sequence[str],
    labels: Sequence[str],
    data: DataConfig,
    schema: TrainingSchema,
    profile_path: Path,
    stored_target: pd.Series,
    columns: list[str],
    allow_feedback_labels: bool = False,
) -> LogBatch:
    """Rows in the dataset's columns from logged predictions that have a label; the label rows
    that cannot be trusted are set aside (LogBatch.set_aside), never silently dropped."""
    from mlgitops.monitoring import logs
    from mlgitops.monitoring.labeljoin import join_labels
    from mlgitops.profile import load_profile

    if not profile_path.is_file():
        raise IngestError(
            f"{profile_path}: the reference profile (paths.profile) is missing; run `dvc repro`"
        )
    profile = load_profile(profile_path)
    stats = logs.ReadStats()
    logged = logs.read_predictions(predictions, profile, stats)
    label_stats = logs.ReadStats(rejected=[])
    given = logs.read_labels(labels, data.target, data.id_column, label_stats)
    if label_stats.feedback_logs and not allow_feedback_labels:
        raise _feedback_refused(label_stats.feedback_logs[0])
    set_aside = [
        SetAside(
            source=row.source,
            line=row.line,
            reason="malformed",
            id=row.key,
            label=row.label,
            detail=row.reason,
        )
        for row in label_stats.rejected or []
    ]
    if given.empty and not set_aside:
        raise IngestError(f"{', '.join(labels)}: no labels")

    without_id = int(logged[logs.KEY].isna().sum())
    # A retried request logs the same id again: the latest prediction stands for it.
    logged = logged[logged[logs.KEY].notna()].sort_values(logs.TIME, kind="stable")
    logged = logged.drop_duplicates(logs.KEY, keep="last")
    # Labels name the entity id, or the request and row of the prediction (the feedback log); an
    # id labelled both 0 and 1 is set aside, never guessed.
    joined = join_labels(logged, given, on_conflict="refuse")
    unknown = ~joined.known
    set_aside += _unknown(given, unknown)
    set_aside += _conflicting(given, joined.keys, joined.conflicting)
    # "truth": the logged frame has a "label" column already, the served one.
    rows = logged[~np.isnan(joined.truth)].assign(truth=joined.truth[~np.isnan(joined.truth)])
    negative, positive = _class_values(stored_target, schema.positive_class)

    frame = pd.DataFrame(index=range(len(rows)), columns=columns, dtype=object)
    assert data.id_column is not None
    frame[data.id_column] = rows[logs.KEY].to_numpy()
    if data.time_column is not None:
        frame[data.time_column] = rows[logs.EVENT_TIME].to_numpy()
    frame[data.target] = np.where(rows["truth"].to_numpy() == 1.0, positive, negative)
    logged_features = [name for name in profile.features if name in columns]
    for name in logged_features:
        frame[name] = rows[name].to_numpy()
    provided = {data.id_column, data.time_column, data.target, *logged_features}
    not_logged = [c for c in columns if c not in provided]
    notes = [f"prediction logs: {note}" for note in [stats.note()] if note]
    return LogBatch(
        frame=frame,
        unlabelled=len(logged) - len(rows),
        without_id=without_id,
        not_logged=not_logged,
        label_rows=len(given) + len(label_stats.rejected or []),
        set_aside=sorted(set_aside, key=lambda r: (r.source, r.line)),
        input_notes=notes,
    )


def write_set_aside(path: Path, rows: Sequence[SetAside]) -> None:
    """The set-aside label rows as CSV (a header only when there are none), atomically."""
    from mlgitops.io import atomic_write_text

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SET_ASIDE_FIELDS)
    for row in rows:
        writer.writerow([getattr(row, name) if getattr(row, name) is not None else ""
                         for name in SET_ASIDE_FIELDS])  # fmt: skip
    atomic_write_text(path, out.getvalue())


def check_set_aside(
    rows: Sequence[SetAside], label_rows: int, config: IngestConfig, path: Path
) -> dict[str, int]:
    """The counts of set-aside rows; IngestError when they are more than the allowed share."""
    counts = {
        "labels_set_aside": len(rows),
        "unknown_ids": len({r.id for r in rows if r.reason == "unknown_id"}),
        "conflicting_ids": len({r.id for r in rows if r.reason == "conflicting"}),
        "malformed_labels": sum(1 for r in rows if r.reason == "malformed"),
    }
    share = len(rows) / label_rows if label_rows else 0.0
    if share > config.max_set_aside_share:
        counted = _set_aside_counts(
            len(rows),
            label_rows,
            counts["unknown_ids"],
            counts["conflicting_ids"],
            counts["malformed_labels"],
        )
        raise IngestError(
            f"{counted}: {share:.1%} is above ingest.max_set_aside_share "
            f"{config.max_set_aside_share:.1%}; the batch is refused (rows listed in {path})"
        )
    return counts


# Comparing and rendering -------------------------------------------------------------------


def _canonical(column: pd.Series, is_time: bool) -> np.ndarray:
    """One spelling per value (None for missing), so a stored row and a batch row that were
    read differently still compare equal."""
    if is_time:
        times = pd.to_datetime(column, utc=True, errors="coerce", format="ISO8601")
        spelled = times.map(lambda t: t.isoformat(), na_action="ignore")
    elif pd.api.types.is_bool_dtype(column):
        spelled = column.map(normalize_category, na_action="ignore")
    else:
        numbers = pd.to_numeric(column, errors="coerce")
        if numbers.notna().sum() == column.notna().sum() and column.notna().any():
            spelled = numbers.astype("float64").map(repr, na_action="ignore")
        else:
            spelled = to_category(column)
    values = spelled.to_numpy(dtype=object, copy=True)
    values[pd.isna(values)] = None
    return values


def _shown(value: object) -> str:
    return (
        "missing"
        if value is None or (isinstance(value, float) and np.isnan(value))
        else (repr(_cell(value, False)))
    )


def _ids(column: pd.Series) -> pd.Series:
    return to_category(column).astype(object)


def split_stored(
    stored: pd.DataFrame,
    batch: pd.DataFrame,
    data: DataConfig,
    compare: list[str],
    source: str,
) -> tuple[pd.DataFrame, int]:
    """(the batch rows whose id is new, how many were stored already with the same values)."""
    assert data.id_column is not None
    batch_ids = _ids(batch[data.id_column])
    if batch_ids.isna().any():
        row = int(batch_ids.isna().to_numpy().argmax())
        raise IngestError(f"{source}: row {row} has no {data.id_column!r} (data.id_column)")
    repeated = batch_ids[batch_ids.duplicated(keep=False)]
    if len(repeated):
        raise IngestError(
            f"{source}: id {repeated.iloc[0]!r} appears "
            f"{int((batch_ids == repeated.iloc[0]).sum())} times in the batch "
            f"({repeated.nunique()} duplicated ids); the batch is refused"
        )
    stored_ids = _ids(stored[data.id_column])
    position = pd.Series(np.arange(len(stored)), index=stored_ids.to_numpy())
    position = position[~position.index.duplicated(keep="last")]
    known = batch_ids.isin(position.index).to_numpy()
    if not known.any():
        return batch, 0
    old = stored.iloc[position.loc[batch_ids[known].to_numpy()].to_numpy()].reset_index(drop=True)
    new = batch[known].reset_index(drop=True)
    for name in compare:
        is_time = name == data.time_column
        differs = _canonical(old[name], is_time) != _canonical(new[name], is_time)
        if differs.any():
            i = int(differs.argmax())
            raise IngestError(
                f"{source}: id {new[data.id_column].iloc[i]!r} is stored already with "
                f"{name}={_shown(old[name].iloc[i])}, the batch has "
                f"{_shown(new[name].iloc[i])}; ingest never rewrites stored rows"
            )
    return batch[~known].reset_index(drop=True), int(known.sum())


def _cell(value: object, integral: bool) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ"
        )
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating):
        number = float(value)
        return str(int(number)) if integral and number.is_integer() else repr(number)
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value)


def _whole_numbers(column: pd.Series) -> bool:
    if pd.api.types.is_integer_dtype(column):
        return True
    if not pd.api.types.is_float_dtype(column):
        return False
    values = column.to_numpy()
    values = values[~np.isnan(values)]
    return bool(len(values)) and bool((np.floor(values) == values).all())


def render_csv_rows(batch: pd.DataFrame, stored: pd.DataFrame, data: DataConfig) -> str:
    """The batch as CSV lines (no header) in the stored table's column order and spellings."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    columns = list(stored.columns)
    frame = batch[columns].copy()
    if data.time_column is not None:
        frame[data.time_column] = pd.to_datetime(
            frame[data.time_column], utc=True, format="ISO8601"
        )
    # Whole numbers stay whole ("28", not "28.0") where the stored column has only those, as a
    # column of integers with gaps (read as float) does.
    integral = {c: _whole_numbers(stored[c]) for c in columns}
    for row in frame.itertuples(index=False, name=None):
        writer.writerow([_cell(v, integral[c]) for c, v in zip(columns, row, strict=True)])
    return out.getvalue()


def _check_batch(
    batch: pd.DataFrame, schema: TrainingSchema, data: DataConfig, source: str
) -> None:
    """The batch's own rows, so an error names the batch row, not a row of the whole table."""
    for feature in schema.features:
        if feature.kind == "numeric":
            to_numeric(batch[feature.name], feature.name, source)
    if data.time_column is not None:
        check_time_column(batch[data.time_column], data.time_column, source)
    classes = {schema.positive_class} | set(to_category(batch[data.target]).dropna())
    values = to_category(batch[data.target])
    if values.isna().any():
        row = int(values.isna().to_numpy().argmax())
        raise IngestError(f"{source}: target {data.target!r} is missing at row {row}")
    if len(classes) > 2:
        raise IngestError(
            f"{source}: target {data.target!r} has values {sorted(classes)}; the dataset has two"
        )


def _schema_change(before: TrainingSchema, after: TrainingSchema) -> str | None:
    kinds_before = {f.name: f.kind for f in before.features}
    kinds_after = {f.name: f.kind for f in after.features}
    for name in sorted(set(kinds_before) | set(kinds_after)):
        old, new = kinds_before.get(name, "dropped"), kinds_after.get(name, "dropped")
        if old != new:
            return f"column {name!r} would change from {old} to {new}"
    return None


# Storing -----------------------------------------------------------------------------------


def tracking_dvc_file(root: Path, path: Path) -> tuple[Path, Path] | None:
    """(the .dvc file, its output) that tracks `path`, None if no .dvc file in `root` does."""
    root = root.resolve()
    target = (root / path).resolve()
    # Git's list of .dvc files (tracked, or new and not ignored): no walk through .venv or .git.
    listed = git.run(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "*.dvc")
    for dvc_file in sorted({root / name for name in listed.split("\0") if name}):
        try:
            document = yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        for out in document.get("outs") or []:
            out_path = (dvc_file.parent / str(out.get("path", ""))).resolve()
            if target == out_path or out_path in target.parents:
                return dvc_file, out_path
    return None


def _provenance_lines(
    path: Path,
    stored: pd.DataFrame,
    data: DataConfig,
    new_ids: Sequence[str],
    fields: tuple[str, str, str],
) -> str:
    """The sidecar's text: what it held (or one `initial` line per stored row), then new lines."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        out.write(text if text.endswith("\n") or not text else text + "\n")
    else:
        writer.writerow(PROVENANCE_FIELDS)
        assert data.id_column is not None
        period = None
        if data.time_column is not None and len(stored):
            period = _period(stored[data.time_column])
        for value in _ids(stored[data.id_column]):
            writer.writerow([value, INITIAL_SOURCE, period or "", INITIAL_SOURCE])
    source, period, batch_id = fields
    for value in new_ids:
        writer.writerow([value, source, period, batch_id])
    return out.getvalue()


def _period(times: pd.Series) -> str | None:
    parsed = pd.to_datetime(times, utc=True, errors="coerce", format="ISO8601").dropna()
    if parsed.empty:
        return None
    spell = "%Y-%m-%dT%H:%M:%SZ"
    return f"{parsed.min().strftime(spell)}/{parsed.max().strftime(spell)}"


def _write_candidate(data_path: Path, columns: list[str], rows_text: str) -> Path:
    """The dataset with the new rows, beside it under a temporary name."""
    fd, name = tempfile.mkstemp(
        prefix=f".{data_path.name}.", suffix=data_path.suffix, dir=data_path.parent
    )
    os.close(fd)
    candidate = Path(name)
    try:
        if data_path.suffix.lower() in {".parquet", ".pq"}:
            import pyarrow as pa
            import pyarrow.parquet as pq

            old = pq.read_table(data_path)
            parsed = read_rows_as(old.schema, columns, rows_text)
            pq.write_table(pa.concat_tables([old, parsed]), candidate)
        else:
            with data_path.open("rb") as source, candidate.open("wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
                source.seek(-1, os.SEEK_END)
                if source.read(1) != b"\n":
                    target.write(b"\n")
                target.write(rows_text.encode("utf-8"))
        candidate.chmod(data_path.stat().st_mode & 0o777)
    except BaseException:
        candidate.unlink(missing_ok=True)
        raise
    return candidate


def read_rows_as(schema: object, columns: list[str], rows_text: str) -> object:
    """Headerless CSV rows read into `schema` (a Parquet dataset's), naming a column that does
    not fit."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    assert isinstance(schema, pa.Schema)
    table = pacsv.read_csv(
        io.BytesIO(rows_text.encode("utf-8")),
        read_options=pacsv.ReadOptions(column_names=columns),
        convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
    )
    arrays = []
    for field in schema:
        try:
            arrays.append(table.column(field.name).cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise IngestError(
                f"batch column {field.name!r} does not fit the dataset's type {field.type}: "
                f"{str(error).splitlines()[0]}"
            ) from None
    return pa.Table.from_arrays(arrays, schema=schema)


def _dvc_add(root: Path, out: Path) -> None:
    result = run_dvc("add", "--quiet", str(out.relative_to(root)), cwd=root)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()
        raise IngestError(
            f"the batch is stored in {out} but `dvc add` failed: {tail[-1] if tail else ''}; "
            "run `dvc add` yourself"
        )


def _default_source(request: IngestRequest) -> str:
    if request.batch:
        return "file:" + "+".join(Path(name).name for name in request.batch)
    return "log:" + "+".join(Path(name).name for name in (*request.predictions, *request.labels))


def ingest(
    params: Params,
    request: IngestRequest,
    root: Path = Path(),
    progress: Callable[[str], None] = lambda _: None,
    warn: Callable[[str], None] = lambda _: None,
) -> IngestSummary:
    """Append the batch to `data.path` (under `root`), record provenance, `dvc add` it. Each
    label row set aside goes to `warn` (the first SHOWN_SET_ASIDE; all are in the file)."""
    data = params.data
    root = root.resolve()
    if data.id_column is None:
        raise IngestError("data.id_column is not set: ingest de-duplicates rows by their id")
    if bool(request.batch) == bool(request.predictions):
        raise IngestError("give batch files, or --predictions with --labels (not both)")
    if request.predictions and not request.labels:
        raise IngestError("--predictions needs --labels: only labelled rows are ingested")
    data_path = root / data.path
    tracked = tracking_dvc_file(root, data.path) if request.dvc_add else None
    if request.dvc_add and tracked is None:
        raise IngestError(f"{data.path}: no .dvc file tracks it; run `dvc add {data.path}` first")

    progress("reading the stored dataset")
    stored = read_table(data_path, data.format)
    columns = [str(c) for c in stored.columns]
    schema, _ = validate_table(stored, data, params.validate_, str(data.path))
    progress("reading the batch")
    source = request.source or _default_source(request)
    unlabelled = without_id = 0
    not_logged: list[str] = []
    labels_summary: dict[str, object] = {}
    if request.batch:
        batch = read_batch_files(request.batch, columns)
        compare = columns
        where = ", ".join(request.batch)
    else:
        built = batch_from_logs(
            request.predictions,
            request.labels,
            data,
            schema,
            root / params.paths.profile,
            stored[data.target],
            columns,
            request.allow_feedback_labels or params.ingest.allow_feedback_labels,
        )
        batch, unlabelled, without_id = built.frame, built.unlabelled, built.without_id
        not_logged = built.not_logged
        report = request.set_aside_path or params.paths.ingest_set_aside
        write_set_aside(root / report, built.set_aside)
        # Refused: one line with the counts (the rows are in the file); else each row named.
        counts = check_set_aside(built.set_aside, built.label_rows, params.ingest, report)
        for row in built.set_aside[:SHOWN_SET_ASIDE]:
            warn(row.line_text())
        if len(built.set_aside) > SHOWN_SET_ASIDE:
            warn(f"... {len(built.set_aside) - SHOWN_SET_ASIDE} more set aside, listed in {report}")
        labels_summary = {
            **counts,
            "label_rows": built.label_rows,
            "set_aside_file": str(report),
            "input_notes": built.input_notes,
        }
        compare = [c for c in columns if c not in not_logged]
        where = ", ".join(request.predictions)
    if batch.empty:
        raise IngestError(f"{where}: no labelled rows to ingest")
    _check_batch(batch, schema, data, where)
    fresh, already = split_stored(stored, batch, data, compare, where)

    provenance_path = root / data.provenance_path
    summary = {
        "data_path": str(data.path),
        "provenance_path": str(data.provenance_path),
        "source": source,
        "rows_before": len(stored),
        "rows_in_batch": len(batch),
        "rows_already_stored": already,
        "unlabelled_predictions": unlabelled,
        "predictions_without_id": without_id,
        "columns_not_logged": not_logged,
        "dvc_file": str(tracked[0].relative_to(root)) if tracked else None,
        **labels_summary,
    }
    if fresh.empty:
        return IngestSummary(**summary, batch_id=None, period=None, rows_added=0, positives_added=0)

    rows_text = render_csv_rows(fresh, stored, data)
    batch_id = hashlib.sha256(rows_text.encode("utf-8")).hexdigest()[:12]
    period = _period(fresh[data.time_column]) if data.time_column else None
    progress(f"validating {len(stored) + len(fresh)} rows")
    candidate = _write_candidate(data_path, columns, rows_text)
    try:
        combined = read_table(candidate, data.format)
        if len(combined) != len(stored) + len(fresh):
            raise IngestError(
                f"{where}: the batch reads back as {len(combined) - len(stored)} rows, not "
                f"{len(fresh)} (a value with a line break or a quote?)"
            )
        after, _ = validate_table(combined, data, params.validate_, f"{data.path} + {where}")
        change = _schema_change(schema, after)
        if change:
            raise IngestError(
                f"{where}: {change}; fix the batch or declare it in data.column_types"
            )
        provenance = _provenance_lines(
            provenance_path,
            stored,
            data,
            list(_ids(fresh[data.id_column])),
            (source, period or "", batch_id),
        )
        progress("storing")
        provenance_path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(
            prefix=f".{provenance_path.name}.", suffix=".tmp", dir=provenance_path.parent
        )
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(provenance)
        pending = Path(name)
        pending.chmod(0o644)
        try:
            candidate.replace(data_path)
            pending.replace(provenance_path)
        finally:
            pending.unlink(missing_ok=True)
    finally:
        candidate.unlink(missing_ok=True)
    positives = int((to_category(fresh[data.target]) == schema.positive_class).sum())
    if tracked is not None:
        progress("dvc add")
        _dvc_add(root, tracked[1])
        if (
            provenance_path.resolve() != tracked[1]
            and tracked[1] not in provenance_path.resolve().parents
        ):
            _dvc_add(root, provenance_path.resolve())
    return IngestSummary(
        **summary,
        batch_id=batch_id,
        period=period,
        rows_added=len(fresh),
        positives_added=positives,
    )

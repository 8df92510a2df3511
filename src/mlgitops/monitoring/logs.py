"""Reading prediction logs and labels: local files, directories, gzip and fsspec URLs (s3://...).

Prediction lines are what the service appends:
`{"request_id","row","time","model_version","features":{...},"score","label"}`, and from the
serving rework on also `"id"` (the entity id) and `"event_time"` (the record's own time). Both
are read when present; otherwise the key is `request_id:row` and the event time is `time`.

Parsing is vectorised (pyarrow's JSON reader with a fixed schema); a file it refuses (a
truncated or malformed line, a category sent as a number) is re-read line by line with orjson,
so a bad line is counted and reported, never fatal.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.json as pajson

from mlgitops.errors import MonitoringInputError
from mlgitops.profile import NumericProfile, ReferenceProfile, normalize_category

LOG_SUFFIXES = (".jsonl", ".json", ".ndjson", ".log", ".jsonl.gz", ".json.gz", ".ndjson.gz")
LOG_SUFFIXES += (".log.gz", ".gz")
MAX_EXAMPLES = 5

# Columns of the frame read_predictions returns, besides one column per feature.
KEY, REQUEST_KEY, TIME, EVENT_TIME, VERSION, SCORE, LABEL = (
    "key",
    "request_key",
    "time",
    "event_time",
    "model_version",
    "score",
    "label",
)


@dataclass
class ReadStats:
    files: list[str] = field(default_factory=list)
    lines: int = 0
    malformed: int = 0
    examples: list[str] = field(default_factory=list)

    def bad(self, where: str, reason: str, count: int = 1) -> None:
        self.malformed += count
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {reason}")


def expand(sources: Iterable[str], suffixes: tuple[str, ...] = LOG_SUFFIXES) -> list[str]:
    """Files named by `sources`: files as given, directories searched recursively, sorted."""
    import fsspec

    found: list[str] = []
    for source in sources:
        fs, path = fsspec.core.url_to_fs(str(source))
        protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
        prefix = "" if protocol in ("file", "local") else f"{protocol}://"
        if not fs.exists(path):
            raise MonitoringInputError(f"{source}: not found")
        if fs.isdir(path):
            names = sorted(p for p in fs.find(path) if p.lower().endswith(suffixes))
            found.extend(prefix + name for name in names)
        else:
            found.append(str(source))
    return found


def read_bytes(url: str) -> bytes:
    import fsspec

    try:
        with fsspec.open(url, "rb", compression="infer") as handle:
            return handle.read()
    except (OSError, EOFError) as error:  # includes a truncated gzip
        raise MonitoringInputError(f"{url}: cannot read: {error}") from None


def _arrow_schema(profile: ReferenceProfile) -> pa.Schema:
    features = [
        pa.field(name, pa.float64() if isinstance(spec, NumericProfile) else pa.string())
        for name, spec in profile.features.items()
    ]
    return pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("request_id", pa.string()),
            pa.field("row", pa.int64()),
            pa.field("time", pa.string()),
            pa.field("event_time", pa.string()),
            pa.field("model_version", pa.string()),
            pa.field("features", pa.struct(features)),
            pa.field("score", pa.float64()),
            pa.field("label", pa.int64()),
        ]
    )


def _fast(data: bytes, schema: pa.Schema) -> pa.Table | None:
    try:
        options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        return pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(block_size=8 << 20),
            parse_options=options,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def _slow(data: bytes, profile: ReferenceProfile, url: str, stats: ReadStats) -> dict[str, list]:
    names = list(profile.features)
    out: dict[str, list] = {k: [] for k in ("id", "request_id", "row", "time", "event_time")}
    out.update({k: [] for k in ("model_version", "score", "label")})
    feature_values: dict[str, list] = {name: [] for name in names}
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            stats.bad(f"{url}:{number}", "not valid JSON (truncated?)")
            continue
        features = record.get("features") if isinstance(record, dict) else None
        score = record.get("score") if isinstance(features, dict) else None
        if not isinstance(score, int | float) or isinstance(score, bool):
            stats.bad(f"{url}:{number}", "no features object or numeric score")
            continue
        if not isinstance(record.get("time") or record.get("event_time"), str):
            stats.bad(f"{url}:{number}", "no time")
            continue
        for key in ("id", "request_id", "time", "event_time", "model_version"):
            value = record.get(key)
            out[key].append(None if value is None else str(value))
        row = record.get("row")
        out["row"].append(row if isinstance(row, int) else 0)
        out["score"].append(float(score))
        label = record.get("label")
        out["label"].append(int(label) if isinstance(label, int | float | bool) else None)
        for name in names:
            feature_values[name].append(features.get(name))
    out["features"] = feature_values  # type: ignore[assignment]
    return out


def _frame_from_arrow(table: pa.Table, profile: ReferenceProfile) -> dict[str, object]:
    columns: dict[str, object] = {
        name: table.column(name).to_numpy(zero_copy_only=False)
        for name in ("id", "request_id", "row", "time", "event_time", "model_version")
    }
    columns["score"] = table.column("score").to_numpy(zero_copy_only=False)
    columns["label"] = table.column("label").to_numpy(zero_copy_only=False)
    features = table.column("features").combine_chunks()
    columns["features"] = {
        name: features.field(name).to_numpy(zero_copy_only=False) for name in profile.features
    }
    return columns


def _typed_features(raw: dict[str, object], profile: ReferenceProfile) -> dict[str, np.ndarray]:
    typed = {}
    for name, spec in profile.features.items():
        values = np.asarray(raw[name])
        if isinstance(spec, NumericProfile):
            if values.dtype.kind != "f":
                values = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
            typed[name] = np.asarray(values, dtype="float64")
        elif pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
            typed[name] = values.astype(object)  # the fast path: strings and None already
        else:
            typed[name] = np.array([normalize_category(v) for v in values.tolist()], dtype=object)
    return typed


def _parse_times(values: object) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(
        pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="ISO8601")
    )


def parse_predictions(
    data: bytes, url: str, profile: ReferenceProfile, stats: ReadStats
) -> pd.DataFrame:
    """One file's prediction lines as a frame (see KEY... and the feature names)."""
    stats.lines += data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    # A line cut by a crash mid-write is the commonest damage: parse it apart so the rest of
    # the file keeps the fast path.
    cut = data.rfind(b"\n") + 1
    head, tail = data[:cut], data[cut:]
    parts = []
    table = _fast(head, _arrow_schema(profile)) if head.strip() else None
    if table is not None:
        parts.append(_frame_from_arrow(table, profile))
        columns = parts[-1]
        no_time = pd.isna(columns["time"]) & pd.isna(columns["event_time"])  # type: ignore[arg-type]
        bad = pd.isna(columns["score"]) | no_time  # type: ignore[arg-type]
        if bad.any():
            stats.bad(f"{url}", "lines without score or time", int(bad.sum()))
            keep = ~bad
            parts[-1] = _select(parts[-1], keep)
    elif head.strip():
        parts.append(_slow(head, profile, url, stats))
    if tail.strip():
        parts.append(_slow(tail, profile, f"{url} (last line)", stats))
    frames = [_to_frame(part, profile) for part in parts]
    frames = [frame for frame in frames if len(frame)]
    return pd.concat(frames, ignore_index=True) if frames else _to_frame(None, profile)


def _select(columns: dict[str, object], keep: np.ndarray) -> dict[str, object]:
    out: dict[str, object] = {k: np.asarray(v)[keep] for k, v in columns.items() if k != "features"}
    features: dict[str, object] = columns["features"]  # type: ignore[assignment]
    out["features"] = {name: np.asarray(v)[keep] for name, v in features.items()}
    return out


def _to_frame(columns: dict[str, object] | None, profile: ReferenceProfile) -> pd.DataFrame:
    if columns is None:
        columns = {k: [] for k in ("id", "request_id", "row", "time", "event_time")}
        columns.update({"model_version": [], "score": [], "label": []})
        columns["features"] = {name: [] for name in profile.features}
    request = pd.Series(columns["request_id"], dtype=object).astype(str)
    rows = pd.Series(columns["row"], dtype=object).fillna(0).astype(int).astype(str)
    ids = pd.Series(columns["id"], dtype=object)
    time = _parse_times(columns["time"])
    event = _parse_times(columns["event_time"])
    frame = pd.DataFrame(
        {
            KEY: ids.where(ids.notna(), None).to_numpy(dtype=object),
            REQUEST_KEY: (request + ":" + rows).to_numpy(dtype=object),
            TIME: time,
            EVENT_TIME: event.where(~event.isna(), time),
            VERSION: pd.Series(columns["model_version"], dtype=object).to_numpy(dtype=object),
            SCORE: np.asarray(columns["score"], dtype="float64"),
            LABEL: pd.to_numeric(pd.Series(columns["label"], dtype=object), errors="coerce"),
        }
    )
    frame[TIME] = frame[TIME].where(~frame[TIME].isna(), frame[EVENT_TIME])
    for name, values in _typed_features(columns["features"], profile).items():  # type: ignore[arg-type]
        frame[name] = values
    return frame


def read_predictions(
    sources: Iterable[str], profile: ReferenceProfile, stats: ReadStats
) -> pd.DataFrame:
    files = expand(sources)
    stats.files.extend(files)
    frames = []
    for url in files:
        frame = parse_predictions(read_bytes(url), url, profile, stats)
        bad_time = frame[EVENT_TIME].isna()
        if bad_time.any():
            stats.bad(url, "unparsable time", int(bad_time.sum()))
            frame = frame[~bad_time]
        frames.append(frame)
    if not frames:
        return _to_frame(None, profile)
    return pd.concat(frames, ignore_index=True)


# Labels ------------------------------------------------------------------------------------

LABEL_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", *LOG_SUFFIXES)


def _label_table(url: str, data: bytes) -> pd.DataFrame:
    lower = url.lower()
    if lower.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        return pq.read_table(io.BytesIO(data)).to_pandas()
    if lower.endswith((".csv", ".csv.gz")):
        import pyarrow.csv as pacsv

        options = pacsv.ConvertOptions(strings_can_be_null=True)
        return pacsv.read_csv(io.BytesIO(data), convert_options=options).to_pandas()
    records = []
    for line in data.split(b"\n"):
        if line.strip():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                record = None
            records.append(record if isinstance(record, dict) else {"__bad__": True})
    return pd.DataFrame.from_records(records)


def _label_values(column: pd.Series) -> pd.Series:
    text = column.map(normalize_category, na_action="ignore")
    mapped = text.map({"1": 1.0, "0": 0.0, "true": 1.0, "false": 0.0})
    return mapped


def read_labels(
    sources: Iterable[str], target: str, id_column: str | None, stats: ReadStats
) -> pd.DataFrame:
    """Labels keyed like predictions: `key` (entity id) or `request_key` (request_id:row),
    `label` 0/1 and `label_time` (NaT if the file has none)."""
    frames = []
    for url in expand(sources, LABEL_SUFFIXES):
        stats.files.append(url)
        try:
            table = _label_table(url, read_bytes(url))
        except (pa.ArrowInvalid, OSError, ValueError) as error:
            raise MonitoringInputError(f"{url}: not a readable label file: {error}") from None
        stats.lines += len(table)
        label_column = next((c for c in ("label", target) if c in table.columns), None)
        if label_column is None:
            raise MonitoringInputError(f"{url}: no 'label' or {target!r} column")
        id_name = next((c for c in ("id", id_column) if c and c in table.columns), None)
        if id_name is None and "request_id" not in table.columns:
            raise MonitoringInputError(
                f"{url}: no 'id', {id_column!r} or 'request_id' column to join labels on"
            )
        keys = pd.Series([None] * len(table), dtype=object)
        if id_name is not None:
            keys = table[id_name].map(normalize_category, na_action="ignore").astype(object)
        request = pd.Series([None] * len(table), dtype=object)
        if "request_id" in table.columns:
            rows = table["row"] if "row" in table.columns else pd.Series(0, index=table.index)
            rows = pd.to_numeric(rows, errors="coerce").fillna(0).astype(int).astype(str)
            request = (table["request_id"].astype(str) + ":" + rows).where(
                table["request_id"].notna(), None
            )
        time_column = next((c for c in ("label_time", "time") if c in table.columns), None)
        times = (
            _parse_times(table[time_column])
            if time_column
            else pd.DatetimeIndex([pd.NaT] * len(table), tz="UTC")
        )
        frame = pd.DataFrame(
            {
                KEY: keys.to_numpy(dtype=object),
                REQUEST_KEY: request.to_numpy(dtype=object),
                LABEL: _label_values(table[label_column]).to_numpy(dtype="float64"),
                "label_time": times,
            }
        )
        bad = frame[LABEL].isna() | (frame[KEY].isna() & frame[REQUEST_KEY].isna())
        if bad.any():
            stats.bad(url, "label rows without a 0/1 label or an id", int(bad.sum()))
        frames.append(frame[~bad])
    if not frames:
        return pd.DataFrame(
            {
                KEY: pd.Series([], dtype=object),
                REQUEST_KEY: pd.Series([], dtype=object),
                LABEL: pd.Series([], dtype="float64"),
                "label_time": pd.DatetimeIndex([], tz="UTC"),
            }
        )
    return pd.concat(frames, ignore_index=True)

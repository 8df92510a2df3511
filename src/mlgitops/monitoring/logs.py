"""Reading prediction logs and labels: local files, directories, gzip and fsspec URLs (s3://...).

Prediction lines are what the service appends:
`{"request_id","row","time","model_version","features":{...},"score","label"}`, and from the
serving rework on also `"id"` (the entity id) and `"event_time"` (the record's own time). Both
are read when present; otherwise the key is `request_id:row` and the event time is `time`.
During an experiment (mlgitops.experiment) lines also carry `arm`, `champion_version`,
`challenger_version`, `unit` (the assignment key's value, when it is not the id) and, in shadow
mode, `challenger_score` and `challenger_label`; they read as null in lines without them.

Parsing is vectorised (pyarrow's JSON reader with a fixed schema); a file it refuses (a
truncated or malformed line, a category sent as a number) is re-read line by line with orjson,
so a bad line is counted and reported, never fatal.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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
# Experiment columns (null outside an experiment): the arm that answered, both versions, the
# assignment unit and, in shadow mode, the challenger's score and decision.
ARM, CHAMPION_VERSION, CHALLENGER_VERSION, UNIT = (
    "arm",
    "champion_version",
    "challenger_version",
    "unit",
)
CHALLENGER_SCORE, CHALLENGER_LABEL = "challenger_score", "challenger_label"
EXPERIMENT_STRINGS = (ARM, CHAMPION_VERSION, CHALLENGER_VERSION, UNIT)


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
            *(pa.field(name, pa.string()) for name in EXPERIMENT_STRINGS),
            pa.field(CHALLENGER_SCORE, pa.float64()),
            pa.field(CHALLENGER_LABEL, pa.int64()),
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


def _slow(data: bytes, profile: ReferenceProfile, url: str, stats: ReadStats) -> pa.Table:
    """Line by line: every bad line is counted; values are coerced to the schema's types."""
    schema = _arrow_schema(profile)
    top = {k: [] for k in ("id", "request_id", "row", "time", "event_time", "model_version")}
    top.update({"score": [], "label": [], CHALLENGER_SCORE: [], CHALLENGER_LABEL: []})
    top.update({name: [] for name in EXPERIMENT_STRINGS})
    features: dict[str, list] = {name: [] for name in profile.features}
    numeric = {n for n, spec in profile.features.items() if isinstance(spec, NumericProfile)}
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            stats.bad(f"{url}:{number}", "not valid JSON (truncated?)")
            continue
        values = record.get("features") if isinstance(record, dict) else None
        score = record.get("score") if isinstance(values, dict) else None
        if not isinstance(score, int | float) or isinstance(score, bool):
            stats.bad(f"{url}:{number}", "no features object or numeric score")
            continue
        if not isinstance(record.get("time") or record.get("event_time"), str):
            stats.bad(f"{url}:{number}", "no time")
            continue
        for key in ("id", "request_id", "time", "event_time", "model_version", *EXPERIMENT_STRINGS):
            value = record.get(key)
            top[key].append(None if value is None else str(value))
        row = record.get("row")
        top["row"].append(row if isinstance(row, int) and not isinstance(row, bool) else 0)
        top["score"].append(float(score))
        label = record.get("label")
        top["label"].append(int(label) if isinstance(label, int | float | bool) else None)
        shadow = record.get(CHALLENGER_SCORE)
        numeric_shadow = isinstance(shadow, int | float) and not isinstance(shadow, bool)
        top[CHALLENGER_SCORE].append(float(shadow) if numeric_shadow else None)
        shadow_label = record.get(CHALLENGER_LABEL)
        known = isinstance(shadow_label, int | float | bool)
        top[CHALLENGER_LABEL].append(int(shadow_label) if known else None)
        for name in features:
            value = values.get(name)
            features[name].append(_number(value) if name in numeric else normalize_category(value))
    arrays = [pa.array(top[f.name], type=f.type) for f in schema if f.name != "features"]
    names = [f.name for f in schema if f.name != "features"]
    struct_type = schema.field("features").type
    struct = pa.StructArray.from_arrays(
        [pa.array(features[f.name], type=f.type) for f in struct_type],
        fields=list(struct_type),
    )
    return pa.Table.from_arrays([*arrays, struct], names=[*names, "features"])


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None  # a non-number in a numeric field counts as missing
    return number


def _timestamps(array: pa.ChunkedArray) -> pa.Array:
    """ISO times as UTC timestamps; unparsable ones become null (pandas' parser as fallback)."""
    try:
        return pc.cast(array, pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        text = pd.Series(array.to_pylist(), dtype=object)
        parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
        return pa.array(parsed.astype("datetime64[us, UTC]"), type=pa.timestamp("us", tz="UTC"))


def _parse_times(values: pd.Series) -> pd.DatetimeIndex:
    if pd.api.types.is_datetime64_any_dtype(values):  # pyarrow's CSV reader parsed them already
        times = pd.DatetimeIndex(values)
        return times.tz_localize("UTC") if times.tz is None else times.tz_convert("UTC")
    array = pa.chunked_array([pa.array(values.astype(object).to_numpy(), type=pa.string())])
    return pd.DatetimeIndex(_timestamps(array).to_pandas())


def _frame(table: pa.Table, profile: ReferenceProfile) -> tuple[pd.DataFrame, int]:
    """The columns monitoring uses, built with Arrow kernels (no per-row Python)."""
    time = _timestamps(table.column("time"))
    event = _timestamps(table.column("event_time"))
    event = pc.coalesce(event, time)
    time = pc.coalesce(time, event)
    row = pc.cast(pc.fill_null(table.column("row"), 0), pa.string())
    request = pc.binary_join_element_wise(table.column("request_id"), row, ":")
    columns: dict[str, object] = {
        KEY: table.column("id").to_pandas(),
        REQUEST_KEY: request.to_pandas(),
        TIME: time.to_pandas(),
        EVENT_TIME: event.to_pandas(),
        VERSION: table.column("model_version").to_pandas(),
        SCORE: table.column("score").to_numpy(),
        LABEL: pc.cast(table.column("label"), pa.float64()).to_numpy(),
        **{name: table.column(name).to_pandas() for name in EXPERIMENT_STRINGS},
        CHALLENGER_SCORE: table.column(CHALLENGER_SCORE).to_numpy(),
        CHALLENGER_LABEL: pc.cast(table.column(CHALLENGER_LABEL), pa.float64()).to_numpy(),
    }
    features = table.column("features")
    for i, name in enumerate(profile.features):
        values = pc.struct_field(features, [i])
        floating = pa.types.is_floating(values.type)
        columns[name] = values.to_numpy() if floating else values.to_pandas()
    frame = pd.DataFrame(columns)
    keep = ~(frame[SCORE].isna() | frame[EVENT_TIME].isna())
    return frame, int((~keep).sum())


def parse_predictions(
    data: bytes, url: str, profile: ReferenceProfile, stats: ReadStats
) -> pd.DataFrame:
    """One file's prediction lines as a frame (see KEY... and the feature names)."""
    stats.lines += data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    # A line cut by a crash mid-write is the commonest damage: parse it apart so the rest of
    # the file keeps the fast path.
    cut = data.rfind(b"\n") + 1
    head, tail = data[:cut], data[cut:]
    tables = []
    if head.strip():
        table = _fast(head, _arrow_schema(profile))
        tables.append(table if table is not None else _slow(head, profile, url, stats))
    if tail.strip():
        tables.append(_slow(tail, profile, f"{url} (last line)", stats))
    schema = _arrow_schema(profile)
    table = pa.concat_tables(tables) if tables else schema.empty_table()
    frame, bad = _frame(table, profile)
    if bad:
        stats.bad(url, "lines without a numeric score or a readable time", bad)
        frame = frame[~(frame[SCORE].isna() | frame[EVENT_TIME].isna())].reset_index(drop=True)
    return frame


def empty_predictions(profile: ReferenceProfile) -> pd.DataFrame:
    return _frame(_arrow_schema(profile).empty_table(), profile)[0]


def no_valid_lines(sources: Iterable[str], stats: ReadStats) -> str:
    """Why a read gave no prediction, for the error of a command that needs one: the files,
    the lines read and the first bad line."""
    where = ", ".join(map(str, sources))
    if not stats.files:
        return f"{where}: no prediction log in it (files ending {', '.join(LOG_SUFFIXES)})"
    first = f"; first: {stats.examples[0]}" if stats.examples else ""
    files = f"{len(stats.files)} file{'s' if len(stats.files) > 1 else ''}"
    return (
        f"{where}: {stats.lines} lines read in {files}, none a valid prediction "
        f"({stats.malformed} malformed{first})"
    )


def read_predictions(
    sources: Iterable[str], profile: ReferenceProfile, stats: ReadStats
) -> pd.DataFrame:
    files = expand(sources)
    stats.files.extend(files)
    frames = []
    for url in files:
        frames.append(parse_predictions(read_bytes(url), url, profile, stats))
    if not frames:
        return empty_predictions(profile)
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


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


LABEL_SPELLINGS = {"1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0, "true": 1.0, "false": 0.0}


def _label_values(column: pd.Series) -> pd.Series:
    """0/1 as float, NaN for anything else; vectorised for every dtype a reader produces."""
    if pd.api.types.is_bool_dtype(column):
        return column.astype("float64")
    if pd.api.types.is_numeric_dtype(column):
        values = column.astype("float64")
        return values.where(values.isin([0.0, 1.0]))
    return column.astype(object).astype(str).str.strip().str.lower().map(LABEL_SPELLINGS)


def _keys(column: pd.Series) -> pd.Series:
    """Ids as strings, integral numbers without ".0" (as normalize_category spells them)."""
    if pd.api.types.is_float_dtype(column) or pd.api.types.is_integer_dtype(column):
        values = column.astype("float64")
        if (values.dropna() % 1 == 0).all():
            return column.astype("Int64").astype(str).astype(object).where(column.notna(), None)
    if pd.api.types.is_string_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype(object).where(column.notna(), None)
    return column.map(normalize_category, na_action="ignore").astype(object)


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
            keys = _keys(table[id_name])
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

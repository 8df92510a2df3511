"""Reading prediction logs and labels: local files, directories, gzip and fsspec URLs (s3://...).

Prediction lines are what the service appends, as mlgitops.logline defines them (its
`arrow_schema` is the reader's): `id` and `event_time` are read when present, else the key is
`request_id:row` and the event time is `time`; the experiment's fields read as null in lines
without them.

Files are streamed: a `.gz` is decompressed piece by piece and lines are parsed in blocks of
BLOCK_BYTES, so memory holds one block and the rows kept, never the whole decompressed file (a
gzip bomb costs time, not memory). Damage is counted and reported, never fatal:
- a line that does not parse (a category sent as a number is coerced, not damage) is skipped;
  parsing is vectorised (pyarrow's JSON reader with a fixed schema) and a block it refuses is
  re-read line by line with orjson, so only the bad lines are lost;
- a last line without its newline that does not parse is a *cut line* (a write cut short);
- a line longer than MAX_LINE_BYTES is skipped unread (its bytes are never buffered);
- a `.gz` that ends early or turns corrupt is a *cut archive*: its readable prefix is used.
JSON keys may come in any order in any line; every block is put in one column order.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from mlgitops import logline
from mlgitops.errors import MonitoringInputError
from mlgitops.profile import NumericProfile, ReferenceProfile, normalize_category

LOG_SUFFIXES = (".jsonl", ".json", ".ndjson", ".log", ".jsonl.gz", ".json.gz", ".ndjson.gz")
LOG_SUFFIXES += (".log.gz", ".gz")
MAX_EXAMPLES = 5
# Bytes read (or decompressed) per step; lines parsed per block. Memory for a read is about
# three blocks (the bytes, pyarrow's parse, the frame of one block) besides the rows kept.
READ_BYTES = 1 << 20
BLOCK_BYTES = 8 << 20
# A longer line is skipped unread: a prediction line is a few kilobytes (one record's features),
# so 1 MiB is no real line. Its bytes are dropped as they stream by, so no line costs memory.
MAX_LINE_BYTES = 1 << 20

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
# Whether the line carried its own event time (else EVENT_TIME is the service's log time).
EVENT_TIME_LOGGED = "event_time_logged"
# Experiment columns (null outside an experiment): the arm that answered, both versions, the
# assignment unit and, in shadow mode, the challenger's score and decision.
# (The line's own field names: mlgitops.logline.)
ARM, CHAMPION_VERSION, CHALLENGER_VERSION, UNIT = logline.EXPERIMENT_STRINGS
CHALLENGER_SCORE, CHALLENGER_LABEL = logline.CHALLENGER_SCORE, logline.CHALLENGER_LABEL
EXPERIMENT_STRINGS = logline.EXPERIMENT_STRINGS
# Columns of read_labels' frame besides KEY, REQUEST_KEY, LABEL: where each label was read.
SOURCE, LINE = "source", "line"


@dataclass(frozen=True)
class Rejected:
    """A label row left out, where it was (file and line, or row of a Parquet file) and why."""

    source: str
    line: int
    reason: str
    key: str | None = None
    label: str | None = None

    @property
    def where(self) -> str:
        return location(self.source, self.line)


def location(source: str, line: int) -> str:
    """`file:line`, or `file: row N` for a Parquet file (which has no lines)."""
    if source.lower().endswith((".parquet", ".pq")):
        return f"{source}: row {line}"
    return f"{source}:{line}"


@dataclass
class ReadStats:
    files: list[str] = field(default_factory=list)
    lines: int = 0
    # Lines (or label rows) left out, whatever the reason; cut and long lines among them.
    malformed: int = 0
    cut_lines: int = 0
    long_lines: int = 0
    examples: list[str] = field(default_factory=list)
    # Compressed files that end early or turn corrupt (their readable prefix is used).
    cut_archives: list[str] = field(default_factory=list)
    # JSON-lines label files in the shape of the service's /feedback log.
    feedback_logs: list[str] = field(default_factory=list)
    # Every label row left out, one by one; kept only when a list is given (ingest).
    rejected: list[Rejected] | None = None

    def bad(self, where: str, reason: str, count: int = 1) -> None:
        self.malformed += count
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{where}: {reason}")

    def reject(self, row: Rejected) -> None:
        self.bad(row.where, row.reason)
        if self.rejected is not None:
            self.rejected.append(row)

    def absorb(self, other: ReadStats) -> None:
        """Add `other`, the stats of files read after these: the result is what one reader of
        all the files in that order would have counted."""
        self.files.extend(other.files)
        self.lines += other.lines
        self.malformed += other.malformed
        self.cut_lines += other.cut_lines
        self.long_lines += other.long_lines
        self.examples.extend(other.examples[: MAX_EXAMPLES - len(self.examples)])
        self.cut_archives.extend(other.cut_archives)
        self.feedback_logs.extend(other.feedback_logs)
        if self.rejected is not None and other.rejected is not None:
            self.rejected.extend(other.rejected)

    def figures(self) -> dict[str, object]:
        """The damage, for a JSON summary."""
        return {
            "malformed": self.malformed,
            "cut_lines": self.cut_lines,
            "long_lines": self.long_lines,
            "cut_archives": len(self.cut_archives),
            "examples": self.examples,
            "cut_archive_examples": self.cut_archives[:MAX_EXAMPLES],
        }

    def note(self, what: str = "line") -> str | None:
        """The damage in a phrase ("3 malformed lines skipped (1 cut last line), 1 cut archive
        (readable prefix read: ...)"), None when there was none."""
        parts = []
        if self.malformed:
            details = []
            if self.cut_lines:
                details.append(_plural(self.cut_lines, "cut last line"))
            if self.long_lines:
                details.append(f"{_plural(self.long_lines, 'line')} over {MAX_LINE_BYTES} bytes")
            detail = f" ({', '.join(details)})" if details else ""
            parts.append(f"{_plural(self.malformed, 'malformed ' + what)} skipped{detail}")
        if self.cut_archives:
            parts.append(
                f"{_plural(len(self.cut_archives), 'cut archive')} (readable prefix read: "
                f"{self.cut_archives[0]})"
            )
        return ", ".join(parts) or None


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


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


# Streaming ---------------------------------------------------------------------------------


def _raw_pieces(url: str) -> Iterator[bytes]:
    import fsspec

    try:
        with fsspec.open(url, "rb") as handle:
            while piece := handle.read(READ_BYTES):
                yield piece
    except OSError as error:
        raise MonitoringInputError(f"{url}: cannot read: {error}") from None


def _gunzip(pieces: Iterable[bytes], url: str, stats: ReadStats) -> Iterator[bytes]:
    """Gzip members decompressed in pieces of at most READ_BYTES. A stream that ends early or
    turns corrupt ends the output there (counted in stats.cut_archives), keeping the prefix."""
    decoder = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    started = False  # the current member has had input
    produced = 0
    for piece in pieces:
        data = piece
        while data:
            started = True
            try:
                out = decoder.decompress(data, READ_BYTES)
            except zlib.error as error:
                stats.cut_archives.append(
                    f"{url}: corrupt after {produced} decompressed bytes ({error})"
                )
                return
            produced += len(out)
            if out:
                yield out
            if decoder.eof:  # another member may follow (concatenated gzip files)
                data = decoder.unused_data
                decoder = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
                started = False
                continue
            data = decoder.unconsumed_tail
            while not data and len(out) == READ_BYTES:  # output still pending in zlib
                out = decoder.decompress(b"", READ_BYTES)
                produced += len(out)
                if out:
                    yield out
    if started and not decoder.eof:
        tail = decoder.flush()
        produced += len(tail)
        if tail:
            yield tail
        stats.cut_archives.append(f"{url}: ends early after {produced} decompressed bytes")


# Compressions a file could be named with that are not read: refused by name, not parsed as
# garbage lines.
UNREAD_COMPRESSIONS = (".bz2", ".xz", ".lzma", ".zst", ".zstd", ".zip", ".lz4", ".snappy")


def stream(url: str, stats: ReadStats) -> Iterator[bytes]:
    """The bytes of the file at `url`, decompressed if it ends in .gz, piece by piece."""
    suffix = next((s for s in UNREAD_COMPRESSIONS if url.lower().endswith(s)), None)
    if suffix is not None:
        raise MonitoringInputError(
            f"{url}: {suffix} compression is not read; decompress it or compress it with gzip"
        )
    pieces = _raw_pieces(url)
    return _gunzip(pieces, url, stats) if url.lower().endswith(".gz") else pieces


@dataclass(frozen=True)
class Block:
    first_line: int  # number of the block's first line in its file
    data: bytes  # whole lines, each ending in a newline, except when `last`
    last: bool = False  # the file's tail after its last newline


def _blank_long_lines(data: bytes, first_line: int, url: str, stats: ReadStats) -> bytes:
    """`data` with every line longer than MAX_LINE_BYTES emptied (so lines keep their numbers)."""
    if len(data) <= MAX_LINE_BYTES:
        return data
    ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    long = np.flatnonzero(ends - starts > MAX_LINE_BYTES)
    if not long.size:
        return data
    parts, kept_from = [], 0
    for i in long:
        parts.append(data[kept_from : starts[i]])
        kept_from = int(ends[i])  # keeps the newline: the line reads as empty
        _long_line(first_line + int(i), url, stats)
    parts.append(data[kept_from:])
    return b"".join(parts)


def _long_line(number: int, url: str, stats: ReadStats) -> None:
    stats.long_lines += 1
    stats.reject(Rejected(url, number, f"line longer than {MAX_LINE_BYTES} bytes (skipped unread)"))


def line_blocks(pieces: Iterable[bytes], url: str, stats: ReadStats) -> Iterator[Block]:
    """Blocks of whole lines of about BLOCK_BYTES, then the tail after the last newline (if
    any). Counts the lines in stats.lines; a line over MAX_LINE_BYTES is dropped as it streams."""
    pending = bytearray()
    number = 1  # the number of pending's first line
    skipping = False  # inside a line over MAX_LINE_BYTES: drop bytes up to its newline

    def emit(cut: int) -> Block:
        nonlocal number
        data = bytes(pending[:cut])
        del pending[:cut]
        block = Block(number, _blank_long_lines(data, number, url, stats))
        count = data.count(b"\n")
        stats.lines += count
        number += count
        return block

    for piece in pieces:
        if skipping:
            end = piece.find(b"\n")
            if end < 0:
                continue
            piece = piece[end + 1 :]
            skipping = False
            number += 1
        pending += piece
        cut = pending.rfind(b"\n") + 1
        if len(pending) - cut > MAX_LINE_BYTES:  # the unfinished line is too long already
            if cut:
                yield emit(cut)
            _long_line(number, url, stats)
            stats.lines += 1
            pending.clear()
            skipping = True
        elif len(pending) >= BLOCK_BYTES:  # BLOCK_BYTES > MAX_LINE_BYTES: there is a newline
            yield emit(cut)
    cut = pending.rfind(b"\n") + 1
    if cut:
        yield emit(cut)
    if pending.strip():
        stats.lines += 1
        yield Block(number, bytes(pending), last=True)


def _arrow_schema(profile: ReferenceProfile) -> pa.Schema:
    features = profile.features.items()
    return logline.arrow_schema((name, isinstance(spec, NumericProfile)) for name, spec in features)


def _fast(data: bytes, schema: pa.Schema) -> pa.Table | None:
    try:
        options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
        return pajson.read_json(
            io.BytesIO(data),
            # Pieces of the block parse in parallel; any line (at most MAX_LINE_BYTES) fits one.
            read_options=pajson.ReadOptions(block_size=2 * MAX_LINE_BYTES),
            parse_options=options,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def _slow(
    block: Block, profile: ReferenceProfile, url: str, stats: ReadStats, schema: pa.Schema
) -> pa.Table:
    """Line by line: every bad line is counted; values are coerced to the schema's types. The
    table has the schema's column order, as the fast path's has."""
    top: dict[str, list] = {f.name: [] for f in schema if f.name != logline.FEATURES}
    features: dict[str, list] = {name: [] for name in profile.features}
    numeric = {n for n, spec in profile.features.items() if isinstance(spec, NumericProfile)}
    for number, line in enumerate(block.data.split(b"\n"), start=block.first_line):
        if not line.strip():
            continue
        where = f"{url}:{number}"
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            if block.last:
                stats.cut_lines += 1
                stats.bad(where, "last line cut short (no newline, not valid JSON)")
            else:
                stats.bad(where, "not valid JSON (truncated?)")
            continue
        values = record.get("features") if isinstance(record, dict) else None
        score = record.get("score") if isinstance(values, dict) else None
        if not isinstance(score, int | float) or isinstance(score, bool):
            stats.bad(where, "no features object or numeric score")
            continue
        if not isinstance(record.get("time") or record.get("event_time"), str):
            stats.bad(where, "no time")
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
    struct_type = schema.field("features").type
    columns = {name: pa.array(values, type=schema.field(name).type) for name, values in top.items()}
    columns["features"] = pa.StructArray.from_arrays(
        [pa.array(features[f.name], type=f.type) for f in struct_type],
        fields=list(struct_type),
    )
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


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
    try:
        array = pa.chunked_array([pa.array(values.astype(object).to_numpy(), type=pa.string())])
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # dates (a CSV's "2025-07-01") or other objects
        return pd.DatetimeIndex(pd.to_datetime(values, utc=True, errors="coerce"))
    return pd.DatetimeIndex(_timestamps(array).to_pandas())


def _frame(table: pa.Table, profile: ReferenceProfile) -> tuple[pd.DataFrame, int]:
    """The columns monitoring uses, built with Arrow kernels (no per-row Python)."""
    time = _timestamps(table.column("time"))
    event = _timestamps(table.column("event_time"))
    logged = pc.is_valid(event)
    event = pc.coalesce(event, time)
    time = pc.coalesce(time, event)
    row = pc.cast(pc.fill_null(table.column("row"), 0), pa.string())
    request = pc.binary_join_element_wise(
        table.column("request_id"), row, logline.REQUEST_KEY_SEPARATOR
    )
    columns: dict[str, object] = {
        KEY: table.column("id").to_pandas(),
        REQUEST_KEY: request.to_pandas(),
        TIME: time.to_pandas(),
        EVENT_TIME: event.to_pandas(),
        EVENT_TIME_LOGGED: logged.to_numpy(zero_copy_only=False),
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


def _block_frame(
    block: Block, url: str, profile: ReferenceProfile, schema: pa.Schema, stats: ReadStats
) -> pd.DataFrame:
    table = None if block.last else _fast(block.data, schema)
    if table is None:
        table = _slow(block, profile, url, stats, schema)
    frame, bad = _frame(table, profile)
    if bad:  # kept per block: memory holds valid rows only, whatever the file holds
        stats.bad(url, "lines without a numeric score or a readable time", bad)
        frame = frame[~(frame[SCORE].isna() | frame[EVENT_TIME].isna())].reset_index(drop=True)
    return frame


def _parse_stream(
    pieces: Iterable[bytes], url: str, profile: ReferenceProfile, stats: ReadStats
) -> Iterator[pd.DataFrame]:
    schema = _arrow_schema(profile)
    for block in line_blocks(pieces, url, stats):
        if block.data.strip():
            frame = _block_frame(block, url, profile, schema, stats)
            if len(frame):
                yield frame


PARQUET_SUFFIXES = (".parquet", ".pq")
# Rows per Parquet batch: about a block's worth of lines.
PARQUET_BATCH_ROWS = 1 << 16


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A Parquet table in the line's schema: fields matched by name (a feature inside the
    `features` struct too), missing ones null, others ignored; times may be timestamps."""
    columns = []
    for wanted in schema:
        if wanted.name not in table.column_names:
            columns.append(pa.nulls(len(table), wanted.type))
            continue
        column = table.column(wanted.name).combine_chunks()
        if wanted.name == logline.FEATURES:
            children = (
                {f.name: column.field(i) for i, f in enumerate(column.type)}
                if pa.types.is_struct(column.type)
                else {}
            )
            arrays = [
                children[f.name].cast(f.type)
                if f.name in children
                else pa.nulls(len(table), f.type)
                for f in wanted.type
            ]
            column = pa.StructArray.from_arrays(
                arrays, fields=list(wanted.type), mask=column.is_null() if len(table) else None
            )
        elif wanted.name in (logline.TIME, logline.EVENT_TIME) and pa.types.is_timestamp(
            column.type
        ):
            pass  # read as times as they are (_timestamps casts them to UTC)
        else:
            column = column.cast(wanted.type)
        columns.append(column)
    names = [f.name for f in schema]
    return pa.Table.from_arrays(columns, names=names)


def _parquet_frames(
    url: str, profile: ReferenceProfile, stats: ReadStats
) -> Iterator[pd.DataFrame]:
    """A Parquet file of prediction lines (mlgitops.logline.arrow_schema), batch by batch."""
    import fsspec
    import pyarrow.parquet as pq

    schema = _arrow_schema(profile)
    try:
        with fsspec.open(url, "rb") as handle:
            reader = pq.ParquetFile(handle)
            wanted = [n for n in schema.names if n in reader.schema_arrow.names]
            for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=wanted):
                table = _conform(pa.Table.from_batches([batch]), schema)
                stats.lines += len(table)
                frame, bad = _frame(table, profile)
                if bad:
                    stats.bad(url, "rows without a numeric score or a readable time", bad)
                    keep = ~(frame[SCORE].isna() | frame[EVENT_TIME].isna())
                    frame = frame[keep].reset_index(drop=True)
                if len(frame):
                    yield frame
    except (OSError, pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise MonitoringInputError(
            f"{url}: not a readable Parquet prediction log: {error}"
        ) from None


def prediction_frames(
    url: str, profile: ReferenceProfile, stats: ReadStats
) -> Iterator[pd.DataFrame]:
    """One file's predictions, a block at a time (JSON lines, plain or gzip, or Parquet):
    memory holds one block, whatever the file's size."""
    if url.lower().endswith(PARQUET_SUFFIXES):
        return _parquet_frames(url, profile, stats)
    return _parse_stream(stream(url, stats), url, profile, stats)


def _concat(frames: list[pd.DataFrame], profile: ReferenceProfile) -> pd.DataFrame:
    if not frames:
        return empty_predictions(profile)
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def parse_predictions(
    data: bytes, url: str, profile: ReferenceProfile, stats: ReadStats
) -> pd.DataFrame:
    """One file's prediction lines (given as bytes) as a frame (see KEY... and the features)."""
    return _concat(list(_parse_stream([data], url, profile, stats)), profile)


def empty_predictions(profile: ReferenceProfile) -> pd.DataFrame:
    return _frame(_arrow_schema(profile).empty_table(), profile)[0]


def no_valid_lines(sources: Iterable[str], stats: ReadStats) -> str:
    """Why a read gave no prediction, for the error of a command that needs one: the files,
    the lines read and the first bad line."""
    where = ", ".join(map(str, sources))
    if not stats.files:
        return f"{where}: no prediction log in it (files ending {', '.join(LOG_SUFFIXES)})"
    first = f"; first: {stats.examples[0]}" if stats.examples else ""
    if not first and stats.cut_archives:
        first = f"; {stats.cut_archives[0]}"
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
    frames: list[pd.DataFrame] = []
    for url in files:
        frames.extend(prediction_frames(url, profile, stats))
    return _concat(frames, profile)


# Labels ------------------------------------------------------------------------------------

LABEL_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq", *LOG_SUFFIXES)
# The keys that make a JSON-lines label file the service's /feedback log (serving.feedback).
FEEDBACK_KEYS = frozenset({"request_id", "label"})


def _text_lines(url: str, stats: ReadStats) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, line, whether it is a last line without newline) of a text file, streamed."""
    for block in line_blocks(stream(url, stats), url, stats):
        for number, line in enumerate(block.data.split(b"\n"), start=block.first_line):
            if line.strip():
                yield number, line, block.last


def _jsonl_labels(url: str, stats: ReadStats) -> tuple[pd.DataFrame, list[int]]:
    records, lines = [], []
    feedback = False
    for number, line, last in _text_lines(url, stats):
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            record = None
            if last:
                stats.cut_lines += 1
        if not isinstance(record, dict):
            reason = (
                "last line cut short (no newline, not valid JSON)"
                if last
                else ("not a JSON object")
            )
            stats.reject(Rejected(url, number, reason))
            continue
        feedback = feedback or record.keys() >= FEEDBACK_KEYS
        records.append(record)
        lines.append(number)
    if feedback:
        stats.feedback_logs.append(url)
    return pd.DataFrame.from_records(records), lines


def _csv_labels(url: str, stats: ReadStats) -> tuple[pd.DataFrame, list[int]]:
    import pyarrow.csv as pacsv

    numbers, kept = [], []
    for number, line, _ in _text_lines(url, stats):
        numbers.append(number)
        kept.append(line)
    data = b"\n".join(kept) + b"\n" if kept else b""
    options = pacsv.ConvertOptions(strings_can_be_null=True)
    if not data:
        return pd.DataFrame(), []
    stats.lines -= 1  # the header is no label row
    table = pacsv.read_csv(io.BytesIO(data), convert_options=options).to_pandas()
    # Blank lines were dropped above and values cannot hold newlines (pyarrow's default), so
    # row i is the (i + 1)-th line kept after the header.
    return table, numbers[1:]


def _label_table(url: str, stats: ReadStats) -> tuple[pd.DataFrame, list[int]]:
    """The file's label rows and the line (a Parquet file: the row) each was read from."""
    lower = url.lower()
    if lower.endswith((".parquet", ".pq")):
        import fsspec
        import pyarrow.parquet as pq

        with fsspec.open(url, "rb") as handle:
            table = pq.read_table(handle).to_pandas()
        stats.lines += len(table)
        return table, list(range(1, len(table) + 1))
    if lower.endswith((".csv", ".csv.gz")):
        return _csv_labels(url, stats)
    return _jsonl_labels(url, stats)


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
    `label` 0/1, `label_time` (NaT if the file has none), and where each was read (`source`,
    `line`). Rows without a 0/1 label or a key are left out, counted (and listed one by one in
    stats.rejected when it is a list)."""
    frames = []
    for url in expand(sources, LABEL_SUFFIXES):
        stats.files.append(url)
        try:
            table, lines = _label_table(url, stats)
        except (pa.ArrowInvalid, OSError, ValueError) as error:
            raise MonitoringInputError(f"{url}: not a readable label file: {error}") from None
        if table.empty and not len(table.columns):
            continue
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
            separator = logline.REQUEST_KEY_SEPARATOR
            request = (table["request_id"].astype(str) + separator + rows).where(
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
                SOURCE: url,
                LINE: np.asarray(lines, dtype=np.int64),
            }
        )
        no_label, no_key = frame[LABEL].isna(), frame[KEY].isna() & frame[REQUEST_KEY].isna()
        for i in np.flatnonzero((no_label | no_key).to_numpy()):
            raw = table[label_column].iloc[i]
            shown = None if raw is None or (isinstance(raw, float) and np.isnan(raw)) else raw
            key = frame[KEY].iloc[i]
            key = key if key is not None else frame[REQUEST_KEY].iloc[i]
            reason = f"label {shown!r} is not 0 or 1" if no_label.iloc[i] else "no id or request_id"
            stats.reject(
                Rejected(url, int(lines[i]), reason, key, None if shown is None else str(shown))
            )
        frames.append(frame[~(no_label | no_key)])
    if not frames:
        return pd.DataFrame(
            {
                KEY: pd.Series([], dtype=object),
                REQUEST_KEY: pd.Series([], dtype=object),
                LABEL: pd.Series([], dtype="float64"),
                "label_time": pd.DatetimeIndex([], tz="UTC"),
                SOURCE: pd.Series([], dtype=object),
                LINE: pd.Series([], dtype=np.int64),
            }
        )
    return pd.concat(frames, ignore_index=True)

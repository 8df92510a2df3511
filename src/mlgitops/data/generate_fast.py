"""The embedded generator's data at scale: vectorised with numpy, written as a Parquet dataset.

The same columns, categories, weights and fraud log-odds as `mlgitops.data.generate` (whose CSV
path, the default 50k-row data, is untouched and stays byte-identical), drawn a block of
BLOCK_ROWS rows at a time. Block b draws from PCG64 seeded by SeedSequence([seed, b]); the
transaction id and the timestamp are functions of the global row index; a partition is a slice
of consecutive rows. So the rows never depend on the partition count (P=1 and P=7 give the same
rows), and rows can be made in any order or in parallel.

Same bytes on any machine: only numpy's bit generation (`Generator.random`, which takes the top 53
bits of a 64-bit PCG64 output: exact), integer arithmetic and correctly rounded IEEE operations
(+ - * / sqrt, rint, comparisons) are used. Avoided on purpose: `np.exp`, `np.log`, `np.power`
and the `normal`/`exponential` samplers (libm or SIMD implementations whose last bits differ
across platforms and numpy builds); exp is (1 + x/2^20)^(2^20) by squaring and the noise an
Irwin-Hall sum of 12 uniforms, as in the CSV generator. The Parquet bytes also depend on the
pyarrow version (pinned in requirements.lock), which writes its name into each file.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlgitops.data.generate import (
    CARD_TYPES,
    CHANNELS,
    COLUMNS,
    COUNTRIES,
    DEFAULT_DAYS,
    DEFAULT_SEED,
    DEFAULT_START,
    DEVICE_OS,
    FRAUD_INTERCEPT,
    MERCHANT_CATEGORIES,
    NOISE,
    SIGNAL_STRENGTH,
)
from mlgitops.errors import ConfigError, DataError

BLOCK_ROWS = 1 << 16
# Blocks are gathered into Parquet row groups of this many rows (fewer at a file's end).
ROW_GROUP_ROWS = 1 << 20
# The default partition count gives files of about this many rows (some 150 MB of Parquet).
ROWS_PER_PARTITION = 1 << 22

SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()),
        # Parquet has no seconds unit: milliseconds is what a file holds and a reader sees.
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("amount", pa.float64()),
        ("hour", pa.int64()),
        ("account_age_days", pa.int64()),
        ("customer_age", pa.int64()),
        ("distance_from_home_km", pa.float64()),
        ("transactions_last_24h", pa.int64()),
        ("avg_amount_30d", pa.float64()),
        ("merchant_category", pa.string()),
        ("country", pa.string()),
        ("channel", pa.string()),
        ("card_type", pa.string()),
        ("device_os", pa.string()),
        ("is_fraud", pa.int64()),
    ]
)
assert tuple(SCHEMA.names) == COLUMNS  # the CSV generator's columns, in order

# Uniforms per row, by use (rows of the block's (UNIFORMS, n) draw).
(
    U_TIME,
    U_CATEGORY,
    U_COUNTRY,
    U_CHANNEL,
    U_CARD,
    U_DEVICE,
    U_ACCOUNT,
    U_CUSTOMER,
    U_TYPICAL,
    U_AVG,
    U_AMOUNT,
    U_DISTANCE,
    U_BURST,
    U_TX_BASE,
    U_TX_BURST,
    U_FRAUD,
    U_MISSING_AGE,
    U_MISSING_DISTANCE,
    U_MISSING_AVG,
    U_NOISE,  # the first of 12
) = range(20)
UNIFORMS = U_NOISE + 12


@dataclass(frozen=True)
class BulkConfig:
    rows: int
    partitions: int
    seed: int = DEFAULT_SEED
    start: datetime = DEFAULT_START
    days: int = DEFAULT_DAYS
    first_id: int = 1

    def __post_init__(self) -> None:
        if self.rows < 1:
            raise ConfigError(f"--rows: {self.rows} is not a positive count")
        if not 1 <= self.partitions <= self.rows:
            raise ConfigError(f"--partitions: {self.partitions} is not between 1 and --rows")
        if self.seed < 0:
            raise ConfigError(f"--seed: {self.seed} is negative")

    def bounds(self, partition: int) -> tuple[int, int]:
        """The global rows [first, end) of `partition`: consecutive, sizes differ by at most 1."""
        return (
            partition * self.rows // self.partitions,
            (partition + 1) * self.rows // self.partitions,
        )


def default_partitions(rows: int) -> int:
    return max(1, -(-rows // ROWS_PER_PARTITION))


class _Options:
    """A categorical column's values, cumulative weights and log-odds, for vectorised picks."""

    def __init__(self, options: tuple[tuple, ...]) -> None:
        self.names = pa.array([option[0] for option in options], pa.string())
        weights = np.array([option[1] for option in options], dtype=np.float64)
        self.cumulative = np.cumsum(weights)  # integer weights: exact
        self.total = float(self.cumulative[-1])
        self.risk = np.array([option[2] if len(option) > 2 else 0.0 for option in options])

    def pick(self, u: np.ndarray) -> np.ndarray:
        # The CSV generator subtracts weights from u * total until below 0: the first option
        # whose cumulative weight exceeds the point; the last when rounding runs past it.
        index = np.searchsorted(self.cumulative, u * self.total, side="right")
        return np.minimum(index, len(self.cumulative) - 1)


CATEGORY = _Options(MERCHANT_CATEGORIES)
COUNTRY = _Options(COUNTRIES)
CHANNEL = _Options(CHANNELS)
CARD = _Options(CARD_TYPES)
DEVICE = _Options(DEVICE_OS)
HOME = COUNTRY.names.to_pylist().index("DE")
ONLINE = CHANNEL.names.to_pylist().index("online")
CONTACTLESS = CHANNEL.names.to_pylist().index("contactless")


def _exp(x: np.ndarray) -> np.ndarray:
    value = 1.0 + x / 1_048_576.0
    for _ in range(20):
        value = value * value
    return value


def _round(values: np.ndarray, decimals: int) -> np.ndarray:
    scale = 10.0**decimals
    return np.rint(values * scale) / scale


def _ids(first: int, count: int) -> pa.Array:
    """tx_00000001 ...: at least 8 digits, as the CSV generator writes them."""
    numbers = np.arange(first, first + count, dtype=np.int64)
    width = max(8, len(str(first + count - 1)))
    digits = np.empty((count, width + 3), dtype=np.uint8)
    digits[:, :3] = np.frombuffer(b"tx_", dtype=np.uint8)
    remaining = numbers.copy()
    for position in range(width + 2, 2, -1):
        digits[:, position] = 48 + remaining % 10
        remaining //= 10
    fixed = digits.view(f"S{width + 3}").ravel()
    return pa.array(fixed, pa.binary()).cast(pa.string())


def block_table(config: BulkConfig, block: int) -> pa.Table:
    """Rows [block * BLOCK_ROWS, ...) of the dataset (the last block may be shorter)."""
    first = block * BLOCK_ROWS
    n = min(BLOCK_ROWS, config.rows - first)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([config.seed, block])))
    u = rng.random((UNIFORMS, n))

    # Evenly spread, jittered, strictly ordered in time (the CSV generator's formula).
    total_seconds = config.days * 86_400
    index = np.arange(first, first + n, dtype=np.int64)
    jitter = (u[U_TIME] * total_seconds).astype(np.int64)
    offset = (index * total_seconds + jitter) // config.rows
    epoch = int(config.start.timestamp()) + offset
    hour = (epoch // 3600) % 24

    category = CATEGORY.pick(u[U_CATEGORY])
    country = COUNTRY.pick(u[U_COUNTRY])
    channel = CHANNEL.pick(u[U_CHANNEL])
    card = CARD.pick(u[U_CARD])
    device = DEVICE.pick(u[U_DEVICE])
    has_device = (channel == ONLINE) | (channel == CONTACTLESS)

    account_age_days = (u[U_ACCOUNT] * u[U_ACCOUNT] * 3650).astype(np.int64) + 1
    customer_age = 18 + (u[U_CUSTOMER] * 62).astype(np.int64)
    typical = 15.0 + 120.0 * u[U_TYPICAL] * u[U_TYPICAL]
    avg_amount_30d = typical * (0.8 + 0.4 * u[U_AVG])
    amount = typical * 0.5 / np.sqrt(0.02 + u[U_AMOUNT])
    home = country == HOME
    cube = u[U_DISTANCE] * u[U_DISTANCE] * u[U_DISTANCE]
    distance = np.where(home, 5.0 + 40.0 * cube, 300.0 + 4000.0 * u[U_DISTANCE])
    burst = u[U_BURST] < 0.04
    transactions_24h = (u[U_TX_BASE] * 4).astype(np.int64) + np.where(
        burst, 6 + (u[U_TX_BURST] * 15).astype(np.int64), 0
    )

    ratio = amount / avg_amount_30d
    night = hour < 5
    online = channel == ONLINE
    log_odds = CATEGORY.risk[category] + COUNTRY.risk[country]
    log_odds = log_odds + CHANNEL.risk[channel] + CARD.risk[card]
    log_odds = log_odds + np.where(ratio > 4.0, 1.4, np.where(ratio > 2.0, 0.6, -0.3))
    log_odds = log_odds + np.where(night & online, 1.3, np.where(night, 0.4, 0.0))
    log_odds = log_odds + np.where(
        account_age_days < 30, 1.2, np.where(account_age_days < 180, 0.4, 0.0)
    )
    log_odds = log_odds + np.where(burst & (transactions_24h > 12), 1.5, np.where(burst, 0.6, 0.0))
    log_odds = log_odds + np.where(~home & (distance > 2000.0) & ~online, 0.9, 0.0)
    log_odds = log_odds + np.where((customer_age > 70) & online, 0.5, 0.0)
    log_odds = FRAUD_INTERCEPT + SIGNAL_STRENGTH * log_odds
    noise = u[U_NOISE].copy()
    for k in range(1, 12):  # a fixed order of additions
        noise += u[U_NOISE + k]
    log_odds = log_odds + NOISE * (noise - 6.0)
    is_fraud = (u[U_FRAUD] < 1.0 / (1.0 + _exp(-log_odds))).astype(np.int64)

    # Gaps a real feed has: ages not on file, GPS off, new accounts without history.
    missing_avg = (account_age_days < 15) | (u[U_MISSING_AVG] < 0.02)
    columns = [
        _ids(first + config.first_id, n),
        pa.array(epoch * 1000, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        pa.array(_round(amount, 2)),
        pa.array(hour),
        pa.array(account_age_days),
        pa.array(customer_age, mask=u[U_MISSING_AGE] < 0.03),
        pa.array(_round(distance, 1), mask=u[U_MISSING_DISTANCE] < 0.05),
        pa.array(transactions_24h),
        pa.array(_round(avg_amount_30d, 2), mask=missing_avg),
        CATEGORY.names.take(pa.array(category)),
        COUNTRY.names.take(pa.array(country)),
        CHANNEL.names.take(pa.array(channel)),
        CARD.names.take(pa.array(card)),
        pa.array(
            DEVICE.names.take(pa.array(device)).to_numpy(zero_copy_only=False),
            pa.string(),
            mask=~has_device,
        ),
        pa.array(is_fraud),
    ]
    return pa.Table.from_arrays(columns, schema=SCHEMA)


def partition_tables(config: BulkConfig, partition: int) -> Iterator[pa.Table]:
    """The rows of `partition`, a block slice at a time."""
    first, end = config.bounds(partition)
    for block in range(first // BLOCK_ROWS, -(-end // BLOCK_ROWS)):
        table = block_table(config, block)
        start = block * BLOCK_ROWS
        low, high = max(first - start, 0), min(end - start, table.num_rows)
        yield table.slice(low, high - low)


def rows_table(config: BulkConfig, first: int, end: int) -> pa.Table:
    """Global rows [first, end) (for tests and checks)."""
    tables = []
    for block in range(first // BLOCK_ROWS, -(-end // BLOCK_ROWS)):
        start = block * BLOCK_ROWS
        table = block_table(config, block)
        tables.append(table.slice(max(first - start, 0), min(end - start, table.num_rows)))
    return pa.concat_tables(tables)


def partition_name(partition: int, partitions: int) -> str:
    return f"part-{partition:0{max(5, len(str(partitions - 1)))}d}.parquet"


def _write_partition(config: BulkConfig, partition: int, path: Path) -> None:
    with pq.ParquetWriter(path, SCHEMA, compression="zstd") as writer:
        pending: list[pa.Table] = []
        count = 0
        for table in partition_tables(config, partition):
            pending.append(table)
            count += table.num_rows
            if count >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)
                pending, count = [], 0
        if pending:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_ROWS)


@dataclass(frozen=True)
class BulkResult:
    out: Path
    rows: int
    partitions: int
    seconds: float

    def line(self) -> str:
        rate = self.rows / self.seconds if self.seconds > 0 else float("inf")
        return (
            f"wrote {self.rows} rows in {self.partitions} Parquet files to {self.out} "
            f"({self.seconds:.1f} s, {rate:,.0f} rows/s)"
        )


def write_parquet_dataset(
    out: Path,
    config: BulkConfig,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> BulkResult:
    """Write the dataset as `out`/part-NNNNN.parquet, atomically: every file goes to a hidden
    directory beside `out`, renamed into place once all are written, so a crash leaves no half
    dataset. An existing non-empty `out` is refused unless `force`; then the old one is moved
    aside first and removed only after the new one is in place."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    occupied = out.is_dir() and any(out.iterdir())
    if occupied and not force:
        raise DataError(f"{out}: exists and is not empty (use --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    began = clock()
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for partition in range(config.partitions):
            name = partition_name(partition, config.partitions)
            _write_partition(config, partition, staging / name)
            if progress is not None:
                progress(f"{partition + 1}/{config.partitions} files ({name})")
        staging.chmod(0o755)
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BulkResult(out, config.rows, config.partitions, clock() - began)


def _replace(staging: Path, out: Path) -> None:
    if not out.exists():
        staging.replace(out)
        return
    if not any(out.iterdir()):
        out.rmdir()
        staging.replace(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    old.rmdir()
    out.replace(old)
    try:
        staging.replace(out)
    except BaseException:
        old.replace(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def start_of_day(text: str | None) -> datetime:
    if text is None:
        return DEFAULT_START
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"--start: {text!r} is not YYYY-MM-DD") from None

"""Embedded default data: synthetic card transactions with a 1-3% fraud rate.

Byte-for-byte deterministic on any machine: only `random.Random.random()` (whose sequence Python
guarantees for a given seed) and correctly rounded IEEE arithmetic (+ - * / sqrt) are used, never
libm functions such as exp or log, whose last bits differ between platforms. Numbers are written
with explicit formats. The fraud signal is non-linear (interactions, thresholds, bursts) and noisy,
so a good model lands around 0.85-0.95 ROC AUC rather than 1.0.

Later periods of traffic to monitor come from the same generator under a named scenario (see
SCENARIOS); scenario "none" draws exactly the numbers the default data draws.
"""

from __future__ import annotations

import csv
import io
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mlgitops.io import atomic_write

DEFAULT_ROWS = 50_000
DEFAULT_SEED = 20_261_122
DEFAULT_START = datetime(2025, 1, 1, tzinfo=UTC)
DEFAULT_DAYS = 180

COLUMNS = (
    "transaction_id",
    "timestamp",
    "amount",
    "hour",
    "account_age_days",
    "customer_age",
    "distance_from_home_km",
    "transactions_last_24h",
    "avg_amount_30d",
    "merchant_category",
    "country",
    "channel",
    "card_type",
    "device_os",
    "is_fraud",
)

# (value, weight, fraud log-odds contribution)
MERCHANT_CATEGORIES = (
    ("grocery", 22, -0.8),
    ("restaurants", 14, -0.5),
    ("fuel", 10, -0.4),
    ("retail", 14, 0.0),
    ("travel", 5, 0.5),
    ("entertainment", 7, 0.1),
    ("health", 5, -0.6),
    ("utilities", 5, -0.9),
    ("electronics", 6, 1.0),
    ("gift_cards", 2, 1.8),
    ("crypto_exchange", 1, 2.0),
    ("online_marketplace", 9, 0.6),
)
COUNTRIES = (
    ("DE", 55, 0.0),
    ("FR", 8, 0.2),
    ("NL", 6, 0.2),
    ("AT", 5, 0.1),
    ("IT", 4, 0.3),
    ("ES", 4, 0.3),
    ("PL", 3, 0.5),
    ("GB", 4, 0.4),
    ("US", 4, 0.7),
    ("TR", 2, 0.9),
    ("BR", 1, 1.2),
    ("NG", 1, 1.6),
    ("RU", 1, 1.4),
    ("CN", 1, 1.0),
    ("IN", 2, 0.9),
)
CHANNELS = (("pos", 45, -0.6), ("online", 35, 0.7), ("contactless", 15, -0.7), ("atm", 5, 0.3))
CARD_TYPES = (("debit", 55, -0.2), ("credit", 38, 0.1), ("prepaid", 7, 1.1))
DEVICE_OS = (("ios", 40), ("android", 45), ("windows", 8), ("macos", 5), ("linux", 2))

# Tuned together: about 2.5% fraud, and a gradient-boosted model reaches about 0.90 ROC AUC.
FRAUD_INTERCEPT = -7.0
SIGNAL_STRENGTH = 1.8
NOISE = 1.4


# What changes in a later period. Each effect applies from the first row of the period, so the
# detection delay of a monitor is measured from the period's start.
SCENARIOS = {
    "none": "the same process as the training data",
    "covariate_shift": "amounts 1.8x larger (the fraud mechanism is unchanged)",
    "new_category": "8% of transactions in a merchant category never seen before (bnpl)",
    "broken_feature": "distance_from_home_km always missing (a broken upstream feed)",
    "concept_drift": "fraud moves to the categories and channels that used to be safe",
    "label_delay": "inputs unchanged; labels arrive weeks late (see data.traffic)",
}
NEW_CATEGORY = ("bnpl", 0, 0.5)
NEW_CATEGORY_SHARE = 0.08
SHIFTED_AMOUNT_FACTOR = 1.8


@dataclass(frozen=True)
class GeneratorConfig:
    rows: int = DEFAULT_ROWS
    seed: int = DEFAULT_SEED
    start: datetime = DEFAULT_START
    days: int = DEFAULT_DAYS
    scenario: str = "none"
    # Transaction ids start here, so a later period does not reuse the training data's ids.
    first_id: int = 1

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.scenario!r} (one of {', '.join(SCENARIOS)})")


def _pick(rng: random.Random, options: Sequence[tuple]) -> tuple:
    total = sum(option[1] for option in options)
    point = rng.random() * total
    for option in options:
        point -= option[1]
        if point < 0:
            return option
    return options[-1]


def _normal(rng: random.Random) -> float:
    """Approximately standard normal: Irwin-Hall sum of 12 uniforms, arithmetic only."""
    return sum(rng.random() for _ in range(12)) - 6.0


def _exp(x: float) -> float:
    """exp(x) as (1 + x/2^20)^(2^20) by repeated squaring: plain multiplications, so every
    platform rounds identically (libm's exp may differ in the last bit)."""
    value = 1.0 + x / 1_048_576.0
    for _ in range(20):
        value *= value
    return value


def _logistic(log_odds: float) -> float:
    return 1.0 / (1.0 + _exp(-log_odds))


def _rows(config: GeneratorConfig) -> Iterator[list[str]]:
    rng = random.Random(config.seed)
    scenario = config.scenario
    total_seconds = config.days * 86_400
    for index in range(config.rows):
        # Evenly spread, jittered, strictly ordered in time.
        offset = (index * total_seconds + int(rng.random() * total_seconds)) // max(config.rows, 1)
        moment = config.start + timedelta(seconds=offset)
        # Shift activity towards the day; the hour column follows the (local) timestamp.
        hour = moment.hour

        category, _, category_risk = _pick(rng, MERCHANT_CATEGORIES)
        # Extra draws only under a scenario: "none" keeps the default data's sequence.
        if scenario == "new_category" and rng.random() < NEW_CATEGORY_SHARE:
            category, _, category_risk = NEW_CATEGORY
        country, _, country_risk = _pick(rng, COUNTRIES)
        channel, _, channel_risk = _pick(rng, CHANNELS)
        card_type, _, card_risk = _pick(rng, CARD_TYPES)
        device = _pick(rng, DEVICE_OS)[0] if channel in ("online", "contactless") else ""

        u = rng.random()
        account_age_days = int(u * u * 3650) + 1
        customer_age = 18 + int(rng.random() * 62)
        u = rng.random()
        typical = 15.0 + 120.0 * u * u
        avg_amount_30d = typical * (0.8 + 0.4 * rng.random())
        # Heavy right tail (Pareto, alpha 2) without logs; sqrt is correctly rounded.
        amount = typical * 0.5 / math.sqrt(0.02 + rng.random())
        if scenario == "covariate_shift":
            amount *= SHIFTED_AMOUNT_FACTOR
        home = country == "DE"
        u = rng.random()
        distance = (5.0 + 40.0 * u * u * u) if home else (300.0 + 4000.0 * u)
        burst = rng.random() < 0.04
        transactions_24h = int(rng.random() * 4) + (6 + int(rng.random() * 15) if burst else 0)

        ratio = amount / avg_amount_30d
        night = hour < 5
        if scenario == "concept_drift":
            # The learned risk of category and channel turns upside down.
            category_risk, channel_risk = -category_risk, -channel_risk
        log_odds = category_risk + country_risk + channel_risk + card_risk
        log_odds += 1.4 if ratio > 4.0 else (0.6 if ratio > 2.0 else -0.3)
        log_odds += 1.3 if night and channel == "online" else (0.4 if night else 0.0)
        log_odds += 1.2 if account_age_days < 30 else (0.4 if account_age_days < 180 else 0.0)
        log_odds += 1.5 if burst and transactions_24h > 12 else (0.6 if burst else 0.0)
        log_odds += 0.9 if (not home and distance > 2000.0 and channel != "online") else 0.0
        log_odds += 0.5 if customer_age > 70 and channel == "online" else 0.0
        log_odds = FRAUD_INTERCEPT + SIGNAL_STRENGTH * log_odds
        log_odds += NOISE * _normal(rng)  # what no feature explains
        is_fraud = rng.random() < _logistic(log_odds)

        # Gaps a real feed has: ages not on file, GPS off, new accounts without history.
        customer_age_text = "" if rng.random() < 0.03 else str(customer_age)
        distance_text = "" if rng.random() < 0.05 else f"{distance:.1f}"
        if scenario == "broken_feature":
            distance_text = ""
        avg_text = "" if account_age_days < 15 or rng.random() < 0.02 else f"{avg_amount_30d:.2f}"

        yield [
            f"tx_{index + config.first_id:08d}",
            moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            f"{amount:.2f}",
            str(hour),
            str(account_age_days),
            customer_age_text,
            distance_text,
            str(transactions_24h),
            avg_text,
            category,
            country,
            channel,
            card_type,
            device,
            "1" if is_fraud else "0",
        ]


def generate_csv_text(config: GeneratorConfig) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(_rows(config))
    return buffer.getvalue()


def write_dataset(path: Path, config: GeneratorConfig) -> None:
    """Write the dataset atomically; streaming keeps memory flat for millions of rows."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows(_rows(config))

    atomic_write(path, write)

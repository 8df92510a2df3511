"""The typed artifacts of an audit: the sample's design, its rows, the labelled table and the
report. Tables (sample.csv, labels) are validated row by row into these models when read."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlgitops.config import AuditConfig
from mlgitops.model_base import FrozenModel

# The labelling vocabulary: what the Choices control offers, and what a plain CSV may say.
POSITIVE, NEGATIVE = "fraud", "legit"
LABEL_VALUES = {POSITIVE: 1, NEGATIVE: 0, "1": 1, "0": 0}


class Stratum(FrozenModel):
    """Scores in [low, high) (the last stratum includes 1), all on one side of the threshold."""

    name: str
    low: float
    high: float
    flagged: bool
    near_threshold: bool
    population: int = Field(ge=0)
    sampled: int = Field(ge=0)
    mean_score: float

    @property
    def inclusion_probability(self) -> float:
        # Simple random sampling without replacement within the stratum: pi = n_h / N_h.
        return self.sampled / self.population if self.population else 0.0


class SampleDesign(FrozenModel):
    """DIR/design.json: how DIR/sample.csv was drawn; enough to weight its labels."""

    design_version: Literal[1] = 1
    # First 12 hex digits of the sha256 of sample.csv: names the audit in every task, so an
    # export of another audit's project is recognised.
    audit_id: str
    model_version: str
    threshold: float
    release_metrics: dict[str, float] = Field(default_factory=dict)
    seed: int
    sample_size: int
    population: int
    blind: bool
    sources: list[str]
    malformed_lines: int
    duplicate_ids: int
    other_versions: int
    features: list[str]
    config: AuditConfig
    strata: list[Stratum]


class SampleRow(FrozenModel):
    """One row of DIR/sample.csv."""

    id: str
    request_id: str | None
    row: int | None
    score: float
    label: int = Field(ge=0, le=1)
    stratum: str
    inclusion_probability: float = Field(gt=0.0, le=1.0)
    # The logged features as JSON (lossless: numbers stay numbers, categories strings).
    features: str


class Annotation(FrozenModel):
    """One row of the labelled table: one annotator's label for one sampled id."""

    id: str
    label: int = Field(ge=0, le=1)
    annotator: str = Field(min_length=1)
    annotated_at: str | None = None


class Adjudicated(FrozenModel):
    """One row of the adjudicated table: the majority label of an id (ties are left out)."""

    id: str
    label: int = Field(ge=0, le=1)
    annotations: int = Field(ge=1)
    agreement: float = Field(ge=0.0, le=1.0)
    label_time: str | None = None


class ImportSummary(FrozenModel):
    files: list[str]
    annotations: int
    ids: int
    annotators: list[str]
    skipped_unlabelled: int
    skipped_cancelled: int
    duplicates_merged: int
    ties: list[str]


class Estimate(FrozenModel):
    metric: str
    estimate: float | None
    low: float | None
    high: float | None
    # Labelled ids in the metric's denominator (e.g. flagged ones for precision).
    labelled: int
    standard_error: float | None
    release: float | None = None


class StratumResult(FrozenModel):
    name: str
    flagged: bool
    population: int
    sampled: int
    labelled: int
    frauds: int
    fraud_rate: float | None
    low: float | None
    high: float | None
    mean_score: float


class Agreement(FrozenModel):
    pairs: int
    raw: float | None
    kappa: float | None


class PairAgreement(FrozenModel):
    annotators: tuple[str, str]
    agreement: Agreement


class Example(FrozenModel):
    id: str
    score: float
    model_label: int
    labels: dict[str, int]
    surprise: float


class AuditReport(FrozenModel):
    report_version: Literal[1] = 1
    audit_id: str
    model_version: str
    threshold: float
    confidence: float
    population: int
    sampled: int
    labelled: int
    annotations: int
    annotators: list[str]
    ties: list[str]
    unlabelled_strata: list[str]
    estimates: list[Estimate]
    strata: list[StratumResult]
    model_vs_annotators: Agreement
    between_annotators: Agreement
    annotator_pairs: list[PairAgreement]
    examples: list[Example]
    method: str

"""`mlgitops ab status`: where a running experiment stands, from its prediction log and labels.

Checks, in the order the verdict uses them:
1. Sample ratio (ab mode): the arm counts of assignment units against the declared share,
   chi-square; p < srm_p_value means the split is broken and no outcome can be trusted.
2. Guardrail: the challenger's alert rate may not rise by more than max_alert_rate_increase,
   judged by the always-valid confidence sequence (breached once its lower end is above it).
3. The primary metric by the mSPRT (`sequential`), on matured labels only: a prediction counts
   once event_time + label_delay <= as_of and its label has arrived by as_of. Looks are every
   matured row in event-time order, so a later status extends the same sequence and the
   always-valid p-value keeps its guarantee however often the status is run.
In shadow mode both models scored every row: the test is on paired differences per row, which
needs far fewer labels than an A/B, and there is no split to check.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field

from mlgitops.config import ExperimentConfig, ThresholdConfig
from mlgitops.confusion import error_cost
from mlgitops.errors import (
    ExperimentChampionBetterError,
    ExperimentError,
    ExperimentGuardrailBreachedError,
    ExperimentInsufficientDataError,
    ExperimentNoDifferenceYetError,
    ExperimentSampleRatioMismatchError,
    ExperimentVerdictError,
)
from mlgitops.experiment import sequential
from mlgitops.experiment.assign import CHALLENGER, CHAMPION
from mlgitops.logline import entity_keys
from mlgitops.model_base import FrozenModel
from mlgitops.monitoring.labeljoin import join_labels
from mlgitops.monitoring.logs import (
    ARM,
    CHALLENGER_LABEL,
    CHALLENGER_VERSION,
    EVENT_TIME,
    KEY,
    LABEL,
    REQUEST_KEY,
    TIME,
    UNIT,
    VERSION,
)

Verdict = Literal[
    "CHALLENGER_BETTER",
    "CHAMPION_BETTER",
    "NO_DIFFERENCE_YET",
    "INSUFFICIENT_DATA",
    "GUARDRAIL_BREACHED",
    "SRM",
]
# CHALLENGER_BETTER exits 0 (promote); every other verdict its own code (errors.py).
VERDICT_ERRORS: dict[str, type[ExperimentVerdictError]] = {
    "CHAMPION_BETTER": ExperimentChampionBetterError,
    "NO_DIFFERENCE_YET": ExperimentNoDifferenceYetError,
    "INSUFFICIENT_DATA": ExperimentInsufficientDataError,
    "GUARDRAIL_BREACHED": ExperimentGuardrailBreachedError,
    "SRM": ExperimentSampleRatioMismatchError,
}
# Whether a lower or a higher value of the metric is better.
LOWER_IS_BETTER = {"cost_per_1000": True, "recall": False, "alert_rate": True}
METRIC_NAMES = {
    "cost_per_1000": "expected cost per 1,000 transactions",
    "recall": "recall",
    "alert_rate": "alert rate",
}


class ArmFigures(FrozenModel):
    arm: Literal["champion", "challenger"]
    model_versions: list[str]
    predictions: int
    units: int
    matured_labelled: int
    frauds: int
    alert_rate: float | None
    primary: float | None  # the primary metric on this arm's matured labelled rows


class SrmFigures(FrozenModel):
    applicable: bool  # not in shadow mode: every row is scored by both
    champion_units: int
    challenger_units: int
    expected_share: float
    observed_share: float | None
    chi2: float
    p_value: float
    threshold: float
    mismatch: bool


class SequentialFigures(FrozenModel):
    metric: str
    lower_is_better: bool
    paired: bool
    tested: bool
    n_champion: int
    n_challenger: int
    estimate: float | None  # challenger - champion, at the last look
    ci_low: float | None  # the always-valid (1 - alpha) confidence sequence at the last look
    ci_high: float | None
    alpha: float
    p_value: float  # always valid under repeated looks
    naive_p_value: float  # a fixed-horizon z-test's: NOT valid when looking repeatedly
    looks: int
    stopped_at: str | None  # event time of the first look with p <= alpha
    estimate_at_stop: float | None
    min_effect: float


class GuardrailFigures(FrozenModel):
    name: str
    limit: float
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    status: Literal["ok", "breached", "unknown"]


class NeedFigures(FrozenModel):
    more_rows: int | None  # matured labelled rows (predictions for alert_rate), both arms
    more_frauds: int | None
    text: str


class ExperimentStatus(FrozenModel):
    verdict: Verdict
    reason: str
    mode: Literal["ab", "shadow"]
    challenger: str | None
    share: float
    as_of: str
    label_delay_hours: float
    rows: int
    rows_without_arm: int
    arms: list[ArmFigures]
    srm: SrmFigures
    primary: SequentialFigures
    guardrails: list[GuardrailFigures]
    need: NeedFigures
    # What the reader left out of the logs and labels (cut lines, cut archives...).
    input_notes: list[str] = Field(default_factory=list)

    @property
    def error(self) -> ExperimentVerdictError | None:
        """The exception the CLI exits with (None for CHALLENGER_BETTER: exit 0)."""
        kind = VERDICT_ERRORS.get(self.verdict)
        return None if kind is None else kind(f"ab status: {self.verdict}: {self.reason}")


def row_values(
    metric: str, decisions: np.ndarray, truth: np.ndarray, costs: ThresholdConfig
) -> np.ndarray:
    """The per-row value whose mean is the metric (cost: currency per 1,000 transactions)."""
    if metric == "cost_per_1000":
        fp = (decisions == 1) & (truth == 0)
        fn = (decisions == 0) & (truth == 1)
        return 1000.0 * error_cost(fp, fn, costs.false_positive_cost, costs.false_negative_cost)
    return decisions.astype(np.float64)  # recall (rows: frauds only) and alert rate


def _restrict(looks: sequential.Looks, mask: np.ndarray) -> sequential.Looks:
    tested = looks.tested & mask
    return replace(
        looks,
        tested=tested,
        delta=np.where(tested, looks.delta, 0.0),
        variance=np.where(tested, looks.variance, 0.0),
    )


def _looks(
    values: np.ndarray,
    other: np.ndarray | None,
    challenger: np.ndarray,
    frauds: np.ndarray,
    config: ExperimentConfig,
    min_rows: int,
) -> sequential.Looks:
    """Looks of the primary or guardrail test: paired when `other` (the challenger's values of
    the same rows, shadow mode) is given, else two independent arms."""
    if other is not None:
        looks = sequential.paired_looks(other - values, min_rows)
        return _restrict(looks, np.cumsum(frauds) >= config.min_frauds_per_arm)
    looks = sequential.two_sample_looks(values, challenger, min_rows)
    enough = (np.cumsum(frauds & ~challenger) >= config.min_frauds_per_arm) & (
        np.cumsum(frauds & challenger) >= config.min_frauds_per_arm
    )
    return _restrict(looks, enough)


def _unit_variance(
    looks: sequential.Looks,
    values: np.ndarray,
    other: np.ndarray | None,
    metric: str,
    share: float,
) -> float | None:
    """n * V for one row's worth of data, the current estimate; before testing starts, from the
    rows there are (or the largest Bernoulli variance for a rate with no rows yet)."""
    if looks.tested.any() and looks.variance[-1] > 0:
        return float(looks.variance[-1] * (looks.n_champion[-1] + looks.n_challenger[-1]))
    if other is not None:
        sample = other - values
        if len(sample) >= 2 and np.var(sample, ddof=1) > 0:
            return float(np.var(sample, ddof=1))
        # No pairs to go by: two independent Bernoulli(1/2) decisions at worst.
        return 0.5 if metric != "cost_per_1000" else None
    variance = float(np.var(values, ddof=1)) if len(values) >= 2 else 0.0
    if variance <= 0:
        if metric == "cost_per_1000":
            return None
        variance = 0.25
    return variance / (1.0 - share) + variance / share


def _need(
    metric: str,
    unit_variance: float | None,
    current_rows: int,
    current_frauds: int,
    burn_in_frauds: int,
    fraud_rate: float | None,
    config: ExperimentConfig,
    currency: str,
) -> NeedFigures:
    tau2 = config.min_effect**2
    effect = _effect_text(metric, config.min_effect, currency)
    if unit_variance is None:
        text = (
            f"too few matured labels to size the test yet; it is sized for a difference of "
            f"{effect} once labels mature (label delay {config.label_delay_hours:g} h)"
        )
        return NeedFigures(more_rows=None, more_frauds=None, text=text)
    total = sequential.rows_needed(
        unit_variance, config.min_effect, tau2, config.alpha, config.power
    )
    more_rows = max(0, math.ceil(total) - current_rows) if math.isfinite(total) else None
    power = f"{config.power:.0%} power"
    if metric == "recall":
        more = None if more_rows is None else max(more_rows, burn_in_frauds)
        count = "an unknown number of" if more is None else f"{more:,}"
        text = f"about {count} more labelled frauds are needed to detect {effect} with {power}"
        return NeedFigures(more_rows=more, more_frauds=more, text=text)
    if metric == "alert_rate":
        count = "an unknown number of" if more_rows is None else f"{more_rows:,}"
        text = f"about {count} more predictions are needed to detect {effect} with {power}"
        return NeedFigures(more_rows=more_rows, more_frauds=None, text=text)
    frauds = None
    if more_rows is not None and fraud_rate is not None and fraud_rate > 0:
        frauds = max(math.ceil(more_rows * fraud_rate), burn_in_frauds)
    rate = f"{fraud_rate:.2%}" if fraud_rate else "unknown"
    count = "an unknown number of" if frauds is None else f"{frauds:,}"
    rows = "an unknown number of" if more_rows is None else f"{more_rows:,}"
    text = (
        f"about {count} more labelled frauds are needed (about {rows} more matured labelled "
        f"transactions at the fraud rate of {rate}) to detect {effect} with {power}"
    )
    return NeedFigures(more_rows=more_rows, more_frauds=frauds, text=text)


def _effect_text(metric: str, value: float, currency: str) -> str:
    if metric == "cost_per_1000":
        return f"{value:g} {currency} per 1,000 transactions"
    return f"{value:.2%} in {METRIC_NAMES[metric]}"


def _srm(frame: pd.DataFrame, challenger: np.ndarray, config: ExperimentConfig) -> SrmFigures:
    unit = frame[UNIT].fillna(entity_keys(frame[KEY], frame[REQUEST_KEY]))
    units = pd.DataFrame({"unit": unit.to_numpy(), "challenger": challenger})
    # A unit counts once, in the arm it was first seen in (a unit never changes arm).
    first = units.drop_duplicates("unit", keep="first")
    n_b = int(first["challenger"].sum())
    n_a = int(len(first) - n_b)
    if config.mode == "shadow":
        return SrmFigures(
            applicable=False,
            champion_units=n_a,
            challenger_units=n_b,
            expected_share=config.share,
            observed_share=None,
            chi2=0.0,
            p_value=1.0,
            threshold=config.srm_p_value,
            mismatch=False,
        )
    result = sequential.srm_test(n_a, n_b, config.share)
    return SrmFigures(
        applicable=True,
        champion_units=n_a,
        challenger_units=n_b,
        expected_share=config.share,
        observed_share=n_b / (n_a + n_b) if n_a + n_b else None,
        chi2=result.chi2,
        p_value=result.p_value,
        threshold=config.srm_p_value,
        mismatch=result.p_value < config.srm_p_value,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _sequential_figures(
    looks: sequential.Looks,
    times: pd.Series,
    metric: str,
    paired: bool,
    config: ExperimentConfig,
    tau2: float,
    min_effect: float,
) -> SequentialFigures:
    decision = sequential.decide(looks, tau2, config.alpha)
    stopped = decision.stopped_at
    n = len(looks.delta)
    return SequentialFigures(
        metric=metric,
        lower_is_better=LOWER_IS_BETTER.get(metric, True),
        paired=paired,
        tested=decision.tested,
        n_champion=int(looks.n_champion[-1]) if n else 0,
        n_challenger=int(looks.n_challenger[-1]) if n else 0,
        estimate=decision.delta if decision.tested else None,
        ci_low=_finite(decision.ci_low),
        ci_high=_finite(decision.ci_high),
        alpha=config.alpha,
        p_value=decision.p_value,
        naive_p_value=decision.naive_p_value,
        looks=int(looks.tested.sum()),
        stopped_at=None if stopped is None else pd.Timestamp(times.iloc[stopped]).isoformat(),
        estimate_at_stop=decision.delta_at_stop,
        min_effect=min_effect,
    )


def analyze(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    config: ExperimentConfig,
    costs: ThresholdConfig,
    as_of: pd.Timestamp | None = None,
) -> ExperimentStatus:
    """The experiment's status from `read_predictions` and `read_labels` frames."""
    has_arm = predictions[ARM].isin([CHAMPION, CHALLENGER]).to_numpy()
    if not has_arm.any():
        raise ExperimentError(
            "no prediction carries an arm ('champion' or 'challenger'): "
            "the log is not from a service running an experiment"
        )
    if as_of is None:
        as_of = predictions.loc[has_arm, TIME].max()
    # What had been logged by as_of, in event-time order: the order labels mature in.
    frame = predictions[has_arm & (predictions[TIME] <= as_of).to_numpy()]
    frame = frame.sort_values(EVENT_TIME, kind="stable").reset_index(drop=True)
    if config.mode == "shadow":
        frame = frame[frame[CHALLENGER_LABEL].notna().to_numpy()].reset_index(drop=True)
    if frame.empty:
        raise ExperimentError(f"no experiment prediction logged by {as_of.isoformat()}")
    challenger = (frame[ARM] == CHALLENGER).to_numpy()
    decisions = frame[LABEL].to_numpy(dtype=np.float64)
    shadow_decisions = (
        frame[CHALLENGER_LABEL].to_numpy(dtype=np.float64) if config.mode == "shadow" else None
    )

    truth = join_labels(frame, labels, on_conflict="latest", as_of=as_of).truth
    delay = pd.Timedelta(hours=config.label_delay_hours)
    matured = (frame[EVENT_TIME] + delay <= as_of).to_numpy()
    outcome = matured & ~np.isnan(truth)
    metric = config.primary_metric
    tau2 = config.min_effect**2

    # The primary metric's rows: matured labelled rows (frauds only for recall); every logged
    # prediction for the alert rate, which needs no label.
    if metric == "alert_rate":
        rows = np.ones(len(frame), dtype=bool)
    elif metric == "recall":
        rows = outcome & (truth == 1)
    else:
        rows = outcome
    y = truth[rows]
    values = row_values(metric, decisions[rows], y, costs)
    other = (
        row_values(metric, shadow_decisions[rows], y, costs)
        if shadow_decisions is not None
        else None
    )
    frauds = y == 1
    if metric == "alert_rate":
        frauds = np.ones(len(values), dtype=bool)  # no fraud minimum for a label-free metric
    min_rows = config.min_frauds_per_arm if metric == "recall" else config.min_rows_per_arm
    looks = _looks(values, other, challenger[rows], frauds, config, min_rows)
    primary = _sequential_figures(
        looks,
        frame.loc[rows, EVENT_TIME],
        metric,
        other is not None,
        config,
        tau2,
        config.min_effect,
    )

    guardrails = []
    if config.max_alert_rate_increase is not None:
        limit = config.max_alert_rate_increase
        alerts_other = shadow_decisions if shadow_decisions is not None else None
        every = np.ones(len(frame), dtype=bool)
        guard_looks = _looks(
            decisions, alerts_other, challenger, every, config, config.min_rows_per_arm
        )
        guard = sequential.decide(guard_looks, limit**2, config.alpha)
        status: Literal["ok", "breached", "unknown"] = "unknown"
        if guard.tested:
            status = (
                "breached"
                if guard.ci_low > limit
                else "ok"
                if guard.ci_high <= limit
                else "unknown"
            )
        guardrails.append(
            GuardrailFigures(
                name="alert_rate_increase",
                limit=limit,
                estimate=guard.delta if guard.tested else None,
                ci_low=_finite(guard.ci_low),
                ci_high=_finite(guard.ci_high),
                status=status,
            )
        )

    srm = _srm(frame, challenger, config)
    if other is None:
        arms = [
            _arm_figures(
                arm,
                mask,
                decisions[mask],
                values[mask[rows]],
                frame.loc[mask, VERSION],
                outcome & mask,
                truth,
                srm.challenger_units if arm == CHALLENGER else srm.champion_units,
            )
            for arm, mask in ((CHAMPION, ~challenger), (CHALLENGER, challenger))
        ]
    else:
        every = np.ones(len(frame), dtype=bool)
        units = srm.champion_units + srm.challenger_units
        arms = [
            _arm_figures(CHAMPION, every, decisions, values, frame[VERSION], outcome, truth, units),
            _arm_figures(
                CHALLENGER,
                every,
                shadow_decisions,
                other,
                frame[CHALLENGER_VERSION],
                outcome,
                truth,
                units,
            ),
        ]

    fraud_rate = float(np.mean(truth[outcome] == 1)) if outcome.any() else None
    n_frauds = [a.frauds for a in arms]
    burn_in = sum(max(0, config.min_frauds_per_arm - f) for f in n_frauds)
    if other is not None:
        burn_in = max(0, config.min_frauds_per_arm - n_frauds[0])
    need = _need(
        metric,
        _unit_variance(looks, values, other, metric, config.share),
        int(rows.sum()),
        int(frauds.sum()),
        burn_in if metric != "alert_rate" else 0,
        fraud_rate,
        config,
        costs.currency,
    )
    if primary.stopped_at is not None:
        need = NeedFigures(
            more_rows=0, more_frauds=0, text=f"none: the test stopped at {primary.stopped_at}"
        )
    verdict, reason = _verdict(srm, guardrails, primary, need, config, costs.currency)
    return ExperimentStatus(
        verdict=verdict,
        reason=reason,
        mode=config.mode,
        challenger=config.challenger,
        share=config.share,
        as_of=pd.Timestamp(as_of).isoformat(),
        label_delay_hours=config.label_delay_hours,
        rows=len(frame),
        rows_without_arm=int((~has_arm).sum()),
        arms=arms,
        srm=srm,
        primary=primary,
        guardrails=guardrails,
        need=need,
    )


def _arm_figures(
    arm: Literal["champion", "challenger"],
    mask: np.ndarray,
    decisions: np.ndarray,
    values: np.ndarray,
    versions: pd.Series,
    outcome: np.ndarray,
    truth: np.ndarray,
    units: int,
) -> ArmFigures:
    """One arm's counts and metric values (`values`: its primary-metric rows)."""
    return ArmFigures(
        arm=arm,
        model_versions=sorted(str(v) for v in versions.dropna().unique()),
        predictions=int(mask.sum()),
        units=units,
        matured_labelled=int(outcome.sum()),
        frauds=int((outcome & (truth == 1)).sum()),
        alert_rate=float(np.mean(decisions)) if len(decisions) else None,
        primary=float(np.mean(values)) if len(values) else None,
    )


def _verdict(
    srm: SrmFigures,
    guardrails: list[GuardrailFigures],
    primary: SequentialFigures,
    need: NeedFigures,
    config: ExperimentConfig,
    currency: str,
) -> tuple[Verdict, str]:
    if srm.mismatch:
        return "SRM", (
            f"the challenger has {srm.observed_share:.4f} of the units, not the declared "
            f"{srm.expected_share:g} (chi-square p = {srm.p_value:.2g} < {srm.threshold:g}): "
            "the assignment or the logging is broken; no outcome can be trusted"
        )
    for guard in guardrails:
        if guard.status == "breached":
            return "GUARDRAIL_BREACHED", (
                f"{guard.name}: the challenger raises it by at least {guard.ci_low:.4f} "
                f"(limit {guard.limit:g})"
            )
    if not primary.tested:
        return "INSUFFICIENT_DATA", (
            f"fewer than {config.min_rows_per_arm} matured labelled rows or "
            f"{config.min_frauds_per_arm} frauds per arm; {need.text}"
        )
    metric = METRIC_NAMES[primary.metric]
    if primary.stopped_at is not None and primary.estimate_at_stop is not None:
        better = (primary.estimate_at_stop < 0) == primary.lower_is_better
        who = "challenger" if better else "champion"
        verdict: Verdict = "CHALLENGER_BETTER" if better else "CHAMPION_BETTER"
        return verdict, (
            f"the {who} is better on {metric} (always-valid p = {primary.p_value:.3g} <= "
            f"alpha {primary.alpha:g}, reached at {primary.stopped_at})"
        )
    return "NO_DIFFERENCE_YET", (
        f"no difference in {metric} shown yet (always-valid p = {primary.p_value:.3g}); {need.text}"
    )

"""The gate's paired comparison: DeLong for ROC AUC, a paired bootstrap for the cost per 1,000,
segment guardrails, the verdict and its reason; and the rule of which comparison runs at all
(`against_base`: the champion released at the base revision, else the challenger passes
unopposed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlgitops.config import GateConfig, ThresholdConfig
from mlgitops.confusion import error_cost
from mlgitops.errors import GateError
from mlgitops.gate.contender import Contender, contender_at
from mlgitops.records import GateReport, PairedDifference, SegmentGuardrail, Verdict
from mlgitops.release import ReleaseRecord
from mlgitops.schema import TARGET_COLUMN, FeatureSpec
from mlgitops.stats import delong, mde, normal_sf, paired_bootstrap_means, z


def per_row_cost(labels: np.ndarray, scores: np.ndarray, threshold: float, config: ThresholdConfig):
    flagged = scores >= threshold
    positive = labels == 1
    return error_cost(
        flagged & ~positive,
        ~flagged & positive,
        config.false_positive_cost,
        config.false_negative_cost,
    )


def _verdict(lower: float, upper: float, margin: float, better: str) -> Verdict:
    # Distances on the "good" scale: positive means better than the champion.
    if better == "higher":
        good_low, good_high = lower, upper
    else:
        good_low, good_high = -upper, -lower
    if good_low > -margin:
        return "PASS"
    if good_high < -margin:
        return "FAIL"
    return "INCONCLUSIVE"


def auc_difference(
    labels: np.ndarray, champion: np.ndarray, challenger: np.ndarray, gate: GateConfig
) -> PairedDifference:
    result = delong(labels, champion, challenger)
    se, delta = result.se_delta, result.delta
    half = z(1.0 - gate.alpha / 2) * se
    if se > 0:
        p = normal_sf((delta + gate.auc_margin) / se)  # one-sided, H0: worse by the margin
    else:
        p = 0.0 if delta > -gate.auc_margin else 1.0
    return PairedDifference(
        better="higher",
        champion=round(result.auc_a, 6),
        challenger=round(result.auc_b, 6),
        difference=round(delta, 6),
        lower=round(delta - half, 6),
        upper=round(delta + half, 6),
        standard_error=round(se, 6),
        margin=gate.auc_margin,
        p_non_inferiority=round(p, 6),
        mde=round(mde(se, gate.alpha / 2, gate.power), 6),
        verdict=_verdict(delta - half, delta + half, gate.auc_margin, "higher"),
    )


def cost_difference(old: np.ndarray, new: np.ndarray, gate: GateConfig) -> PairedDifference:
    """Paired bootstrap of the per-row costs per 1,000 of champion (`old`) and challenger."""
    boot = paired_bootstrap_means(new - old, gate.bootstrap_reps, gate.seed)
    delta = float(new.mean() - old.mean())
    ends = np.quantile(boot, [gate.alpha / 2, 1.0 - gate.alpha / 2])
    lower, upper = float(ends[0]), float(ends[1])
    se = float(boot.std(ddof=1))
    return PairedDifference(
        better="lower",
        champion=round(float(old.mean()), 6),
        challenger=round(float(new.mean()), 6),
        difference=round(delta, 6),
        lower=round(lower, 6),
        upper=round(upper, 6),
        standard_error=round(se, 6),
        margin=gate.cost_margin_per_1000,
        # Share of resamples in which the challenger is worse by the margin or more.
        p_non_inferiority=round(float(np.mean(boot >= gate.cost_margin_per_1000)), 6),
        mde=round(mde(se, gate.alpha / 2, gate.power), 6),
        verdict=_verdict(lower, upper, gate.cost_margin_per_1000, "lower"),
    )


def segment_guardrails(
    frame: pd.DataFrame, labels: np.ndarray, cost_difference_rows: np.ndarray, gate: GateConfig
) -> list[SegmentGuardrail]:
    """Each segment of `gate.segments`: FAIL when its cost per 1,000 is shown worse by more
    than the margin, one-sided at segment_alpha split evenly over the segments tested."""
    groups = []
    for column in gate.segments:
        if column not in frame.columns:
            raise GateError(f"gate.segments: {column!r} is not a column of the test split")
        values = frame[column].astype(object).where(frame[column].notna(), "missing").astype(str)
        for value in sorted(values.unique()):
            groups.append((column, value, (values == value).to_numpy()))
    big_enough = [
        int(mask.sum()) >= gate.segment_min_rows
        and int(labels[mask].sum()) >= gate.segment_min_positive
        for _, _, mask in groups
    ]
    alpha_each = gate.segment_alpha / max(1, sum(big_enough))
    out = []
    for index, ((column, value, mask), tested) in enumerate(zip(groups, big_enough, strict=True)):
        size = {"column": column, "value": value, "n_rows": int(mask.sum())}
        size["n_positive"] = int(labels[mask].sum())
        if not tested:
            out.append(SegmentGuardrail(**size, verdict="SKIPPED"))
            continue
        rows = cost_difference_rows[mask]
        boot = paired_bootstrap_means(rows, gate.bootstrap_reps, gate.seed + 1 + index)
        lower, upper = (float(q) for q in np.quantile(boot, [alpha_each, 1.0 - alpha_each]))
        out.append(
            SegmentGuardrail(
                **size,
                difference=round(float(rows.mean()), 6),
                lower=round(lower, 6),
                upper=round(upper, 6),
                verdict="FAIL" if lower > gate.cost_margin_per_1000 else "PASS",
            )
        )
    return out


def combine(*verdicts: Verdict) -> Verdict:
    if "FAIL" in verdicts:
        return "FAIL"
    return "PASS" if all(v == "PASS" for v in verdicts) else "INCONCLUSIVE"


def _reason(name: str, diff: PairedDifference) -> str:
    worse = f"-{diff.margin:g}" if diff.better == "higher" else f"+{diff.margin:g}"
    interval = f"[{diff.lower:+.4g}, {diff.upper:+.4g}]"
    if diff.verdict == "PASS":
        return f"{name} not worse by {diff.margin:g} (interval {interval} clear of {worse})"
    if diff.verdict == "FAIL":
        return f"{name} worse by more than {diff.margin:g} (interval {interval} beyond {worse})"
    return f"{name} undecided (interval {interval} contains {worse}; MDE {diff.mde:.4g})"


def compare(
    frame: pd.DataFrame,
    current_features: tuple[FeatureSpec, ...],
    champion: Contender,
    challenger: Contender,
    gate: GateConfig,
    costs: ThresholdConfig,
    base: str | None,
) -> GateReport:
    """The paired verdict of `challenger` against `champion` on the labelled rows of `frame`."""
    labels = frame[TARGET_COLUMN].to_numpy().astype(int)
    if len(np.unique(labels)) < 2:
        raise GateError("the test split has a single class; the gate cannot compare ROC AUCs")
    known = challenger.target is not None and champion.target is not None
    old_target = (champion.target, str(champion.positive_class))
    if known and old_target != (challenger.target, str(challenger.positive_class)):
        raise GateError(
            f"the champion predicts {champion.target}={champion.positive_class!r}, the "
            f"challenger {challenger.target}={challenger.positive_class!r}"
        )
    current = {f.name: f for f in current_features}
    old = champion.scores(frame, current, "champion")
    new = challenger.scores(frame, current, "challenger")
    auc = auc_difference(labels, old, new, gate)
    old_cost = per_row_cost(labels, old, champion.threshold, costs) * 1000.0
    new_cost = per_row_cost(labels, new, challenger.threshold, costs) * 1000.0
    cost = cost_difference(old_cost, new_cost, gate)
    verdict = combine(auc.verdict, cost.verdict)
    same = champion.model_hash == challenger.model_hash
    reasons = [_reason("ROC AUC", auc), _reason("cost per 1,000", cost)]
    segments: list[SegmentGuardrail] = []
    if not same and gate.segments:
        segments = segment_guardrails(frame, labels, new_cost - old_cost, gate)
        for harmed in (g for g in segments if g.verdict == "FAIL"):
            verdict = "FAIL"
            reasons.append(
                f"guardrail {harmed.column}={harmed.value}: cost per 1,000 worse by more than "
                f"{gate.cost_margin_per_1000:g} (interval [{harmed.lower:+.4g}, "
                f"{harmed.upper:+.4g}])"
            )
    reason = "the challenger is the champion (same model hash)" if same else "; ".join(reasons)
    return GateReport(
        verdict="PASS" if same else verdict,
        reason=reason,
        base=base,
        champion_bento_tag=champion.bento_tag,
        champion_model_hash=champion.model_hash,
        challenger_model_hash=challenger.model_hash,
        n_test=len(labels),
        n_positive=int(labels.sum()),
        alpha=gate.alpha,
        power=gate.power,
        roc_auc=auc,
        expected_cost_per_1000=cost,
        champion_threshold=champion.threshold,
        challenger_threshold=challenger.threshold,
        currency=costs.currency,
        bootstrap_reps=gate.bootstrap_reps,
        seed=gate.seed,
        segments=tuple(segments),
    )


def unopposed(
    reason: str,
    base: str | None,
    frame: pd.DataFrame,
    challenger: Contender,
    gate: GateConfig,
    costs: ThresholdConfig,
) -> GateReport:
    labels = frame[TARGET_COLUMN].to_numpy().astype(int)
    return GateReport(
        verdict="PASS",
        reason=reason,
        base=base,
        challenger_model_hash=challenger.model_hash,
        n_test=len(labels),
        n_positive=int(labels.sum()),
        alpha=gate.alpha,
        power=gate.power,
        challenger_threshold=challenger.threshold,
        currency=costs.currency,
        bootstrap_reps=gate.bootstrap_reps,
        seed=gate.seed,
    )


def against_base(
    repo: Path,
    base: str,
    base_commit: str,
    frame: pd.DataFrame,
    current_features: tuple[FeatureSpec, ...],
    challenger: Contender,
    gate: GateConfig,
    costs: ThresholdConfig,
) -> tuple[GateReport, tuple[ReleaseRecord, dict] | None]:
    """The gate against the release at `base` (resolved to `base_commit`): the paired verdict
    against its model, or, when that commit has no release (a first release), a PASS
    unopposed. Also the champion's release record and params, None when there was none."""
    found = contender_at(repo, base_commit)
    if found is None:
        reason = f"no champion: {base} has no release (first release)"
        return unopposed(reason, base, frame, challenger, gate, costs), None
    champion, release, raw = found
    report = compare(frame, current_features, champion, challenger, gate, costs, base)
    return report, (release, raw)

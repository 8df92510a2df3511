"""Stage `gate`: promote only a model that is not worse than the one it replaces.

The champion is the model of the release committed at `gate.base` (default HEAD, the release
this change would replace), read the way deploys read old revisions: its release record and
model card from Git, its model file by dvc.lock's md5 from the DVC cache or remote. The
challenger is this tree's model. Both score the same rows, this tree's test split (the champion
through its own feature list), each cut at its own threshold, so the comparison is paired:

- ROC AUC: DeLong's test of the difference (challenger - champion);
- expected cost per 1,000 transactions: a seeded paired bootstrap of the per-row cost
  difference (false_positive_cost per false alarm, false_negative_cost per missed positive).

Each metric gets a two-sided (1 - alpha) interval of the difference and a non-inferiority margin
m: PASS when the whole interval is on the good side of -m (not worse by m, shown: a one-sided
test at alpha/2, as non-inferiority trials do it), FAIL when it is entirely beyond -m (worse by
more than m, shown), INCONCLUSIVE otherwise. The verdict is FAIL if either metric FAILs, PASS if
both PASS, INCONCLUSIVE otherwise. Each FAIL test errs with probability at most alpha/2, so two
equal models FAIL with probability at most alpha whatever the test set's size, and a model
worse by the margin PASSes with at most alpha/2. The MDE beside each figure is the smallest
true difference this test set detects with the configured power, (z_{1-alpha/2} + z_power) *
SE: with a margin below it even an equal challenger is mostly INCONCLUSIVE.

No champion (the base commit has no release: a first release) passes with that reason, as does
`gate.base: null`. The verdict is written, whatever it is, to reports/gate.json and
reports/gate.md; the release stages (rules, package, report) act only on a PASS and otherwise
keep their outputs (src/mlgitops/verdict.py).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mlgitops.config import GateConfig, Params, ThresholdConfig
from mlgitops.errors import ArtifactError, GateError
from mlgitops.git import repo_root, resolve_commit
from mlgitops.io import atomic_write_text, file_sha256, load_pipeline
from mlgitops.records import (
    GateHeadline,
    GateReport,
    ModelCard,
    PairedDifference,
    SegmentGuardrail,
    Verdict,
    load_metrics,
    load_model_card,
    save_headline,
    save_record,
)
from mlgitops.release import ReleaseRecord
from mlgitops.revision import (
    dvc_file_at,
    find_release_at,
    params_at,
    path_at,
    release_path,
)
from mlgitops.schema import TARGET_COLUMN, FeatureSpec, load_schema
from mlgitops.stats import delong, mde, normal_sf, paired_bootstrap_means, z


@dataclass(frozen=True)
class Contender:
    """One side of the comparison: a fitted pipeline, the features it reads, its threshold."""

    pipeline: object
    features: tuple[FeatureSpec, ...]
    threshold: float
    model_hash: str
    bento_tag: str | None = None
    target: str | None = None
    positive_class: str | int | bool | None = None

    def scores(self, frame: pd.DataFrame, current: dict[str, FeatureSpec], who: str) -> np.ndarray:
        missing = [f.name for f in self.features if f.name not in frame.columns]
        if missing:
            raise GateError(
                f"the {who} reads columns the test split lacks: {', '.join(missing)} "
                "(set gate.base to a release with a compatible schema, or null)"
            )
        for feature in self.features:
            now = current.get(feature.name)
            if now is not None and now.kind != feature.kind:
                raise GateError(
                    f"the {who} treats column {feature.name!r} as {feature.kind}, the test split "
                    f"as {now.kind}: the two models cannot score the same rows"
                )
        names = [f.name for f in self.features]
        return self.pipeline.predict_proba(frame[names])[:, 1]  # type: ignore[attr-defined]


def per_row_cost(labels: np.ndarray, scores: np.ndarray, threshold: float, config: ThresholdConfig):
    flagged = scores >= threshold
    positive = labels == 1
    return np.where(flagged & ~positive, config.false_positive_cost, 0.0) + np.where(
        ~flagged & positive, config.false_negative_cost, 0.0
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


def contender_at(repo: Path, commit: str) -> tuple[Contender, ReleaseRecord, dict] | None:
    """The released model of `commit` (None when it has no release record), read from Git
    objects and the DVC cache or remote, checked against the release's model hash."""
    import hashlib

    import joblib

    from mlgitops.git import read_blob

    raw = params_at(repo, commit)
    release = find_release_at(repo, commit, release_path(raw, commit))
    if release is None:
        return None
    model_path = path_at(raw, commit, "model")
    card_path = path_at(raw, commit, "model_card")
    data = dvc_file_at(repo, commit, model_path)
    if "sha256:" + hashlib.sha256(data).hexdigest() != release.model_hash:
        raise ArtifactError(
            f"{commit[:12]}:{model_path} is not the model its release names "
            f"({release.model_hash}): dvc.lock and the release record disagree at that commit "
            "(commit them together)"
        )
    card_text = read_blob(repo, commit, card_path)
    if card_text is None:
        raise ArtifactError(f"{commit[:12]} has no model card {card_path}")
    try:
        card = ModelCard.model_validate_json(card_text)
    except ValueError as error:  # pydantic's ValidationError, e.g. a card older than ModelCard
        first = str(error).strip().splitlines()[0]
        raise ArtifactError(f"{commit[:12]}:{card_path}: not a model card: {first}") from None
    try:
        pipeline = joblib.load(io.BytesIO(data))
    except Exception as error:  # a foreign pickle can raise almost anything
        raise ArtifactError(f"{commit[:12]}:{model_path}: cannot load the model: {error}") from None
    block = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    contender = Contender(
        pipeline=pipeline,
        features=card.features,
        threshold=release.threshold,
        model_hash=release.model_hash,
        bento_tag=release.bento_tag,
        target=block.get("target"),
        positive_class=block.get("positive_class"),
    )
    return contender, release, raw


def workspace_challenger(params: Params) -> Contender:
    """This tree's model, as the evaluate stage left it."""
    card = load_model_card(params.paths.model_card)
    model_hash = "sha256:" + file_sha256(params.paths.model)
    if card.model_hash != model_hash:
        raise ArtifactError(
            f"{params.paths.model_card}: describes model {card.model_hash}, but "
            f"{params.paths.model} is {model_hash} (run `dvc repro`)"
        )
    return Contender(
        pipeline=load_pipeline(params.paths.model),
        features=card.features,
        threshold=load_metrics(params.paths.metrics).threshold,
        model_hash=model_hash,
        target=params.data.target,
        positive_class=params.data.positive_class,
    )


def _fmt(value: float, places: int) -> str:
    return f"{value:,.{places}f}"


def markdown(report: GateReport, title: str = "Champion / challenger gate") -> str:
    """The gate's verdict as a Markdown section (the PR report embeds the same table)."""
    lines = [f"## {title}: **{report.verdict}**", "", report.reason + ".", ""]
    if report.roc_auc is None or report.expected_cost_per_1000 is None:
        lines.append(f"Challenger {report.challenger_model_hash[:19]}, {report.n_test} test rows.")
        return "\n".join(lines) + "\n"
    lines += [
        f"Champion `{report.champion_bento_tag}` (release at `{report.base}`) and challenger "
        f"scored on the same {report.n_test:,} test rows ({report.n_positive:,} positive), each "
        f"at its own threshold ({report.champion_threshold:.4f} and "
        f"{report.challenger_threshold:.4f}). Intervals: two-sided {1 - report.alpha:.0%} "
        f"of challenger - champion; MDE: the smallest true difference this test set detects "
        f"with {report.power:.0%} power.",
        "",
        "| metric | champion | challenger | difference | interval | margin | MDE | verdict |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    rows = (
        ("ROC AUC (DeLong)", report.roc_auc, 4),
        (f"cost per 1,000 ({report.currency}, bootstrap)", report.expected_cost_per_1000, 1),
    )
    for name, diff, places in rows:
        sign = "-" if diff.better == "higher" else "+"
        lines.append(
            f"| {name} | {_fmt(diff.champion, places)} | {_fmt(diff.challenger, places)} | "
            f"{diff.difference:+,.{places}f} | [{diff.lower:+,.{places}f}, "
            f"{diff.upper:+,.{places}f}] | {sign}{diff.margin:g} | {diff.mde:,.{places}f} | "
            f"{diff.verdict} |"
        )
    if report.segments:
        lines += [
            "",
            f"Guardrail segments: cost per 1,000 ({report.currency}) within each segment, FAIL "
            "only when worse by more than the margin is shown (Bonferroni over the segments).",
            "",
            "| segment | rows | positive | difference | interval | verdict |",
            "| --- | ---: | ---: | ---: | --- | --- |",
        ]
        for g in report.segments:
            if g.verdict == "SKIPPED":
                lines.append(f"| {g.column}={g.value} | {g.n_rows:,} | {g.n_positive:,} | | | "
                             "SKIPPED (too small) |")  # fmt: skip
                continue
            lines.append(
                f"| {g.column}={g.value} | {g.n_rows:,} | {g.n_positive:,} | "
                f"{g.difference:+,.1f} | [{g.lower:+,.1f}, {g.upper:+,.1f}] | {g.verdict} |"
            )
    lines += [
        "",
        "Each evaluation on this frozen test split leaks a little of it into the choice; "
        "refresh the test period when new labelled data arrives.",
    ]
    return "\n".join(lines) + "\n"


def run(params: Params) -> str:
    test = pd.read_parquet(params.paths.test)
    schema = load_schema(params.paths.schema_file)
    challenger = workspace_challenger(params)
    base = params.gate.base
    if base is None:
        report = unopposed(
            "gate off (gate.base: null)", None, test, challenger, params.gate, params.threshold
        )
    else:
        repo = repo_root(Path.cwd())
        commit = resolve_commit(repo, base)
        found = contender_at(repo, commit)
        if found is None:
            report = unopposed(
                f"no champion: {base} has no release (first release)",
                base,
                test,
                challenger,
                params.gate,
                params.threshold,
            )
        else:
            report = compare(
                test, schema.features, found[0], challenger, params.gate, params.threshold, base
            )
    save_record(report, params.paths.gate_metrics)
    save_headline(GateHeadline.of(report), params.paths.headline_gate)
    atomic_write_text(params.paths.gate_report, markdown(report))
    return f"{report.verdict}: {report.reason} ({params.paths.gate_report})"

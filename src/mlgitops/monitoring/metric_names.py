"""The metric contract between the service and the generated alert rules.

The service exports these (prometheus_client names without the `_total` suffix and namespace
are in CLIENT_NAMES); the rules of the `rules` stage read exactly these. Bins are those of
mlgitops.profile.bin_label: feature bins over the reference profile, score bins over the
`score` profile of the score reference (artifacts/monitoring/score_reference.json).

Service obligations (the rules assume them):
- `FEATURE_BIN_TOTAL{feature, bin}` +1 per scored row and model feature, bin = bin_label(...);
  every (feature, bin) child created at 0 on start, so a bin that stops filling shows as 0.
- `SCORE_BIN_TOTAL{bin}` +1 per scored row, bin = bin_label(score_reference.score, score).
- `PREDICTIONS_TOTAL{label="0"|"1"}` +1 per scored row (exists today).
- `EXPECTED_OUTCOME_TOTAL{outcome}` per scored row with score p: flagged -> tp += p, fp += 1-p;
  not flagged -> fn += p, tn += 1-p (CBPE; counters accept fractional increments).
- `LABELLED_OUTCOME_TOTAL{outcome}` +1 per /feedback label joined to its logged prediction.
- `MODEL_INFO{bento_tag, model_hash, data_hash, git_commit} 1`: alert annotations read the
  model's hashes and commit from it.
- Every series of the service carries `bento_tag` (RELEASE_LABEL), the tag of the bento it runs
  (its pinned release, or MLGITOPS_BENTO_TAG). The rules keep it through every aggregation, so
  each release is judged on its own series and every alert names the release it is about (the
  rules cannot name the tag themselves: they ship inside the bento whose version hashes them).
"""

from __future__ import annotations

NAMESPACE = "mlgitops"

FEATURE_BIN_TOTAL = "mlgitops_feature_bin_total"
SCORE_BIN_TOTAL = "mlgitops_score_bin_total"
PREDICTIONS_TOTAL = "mlgitops_predictions_total"
EXPECTED_OUTCOME_TOTAL = "mlgitops_expected_outcome_total"
LABELLED_OUTCOME_TOTAL = "mlgitops_labelled_outcome_total"
MODEL_INFO = "mlgitops_model_info"

RELEASE_LABEL = "bento_tag"
FEATURE_LABEL = "feature"
BIN_LABEL = "bin"
OUTCOME_LABEL = "outcome"
PREDICTION_LABEL = "label"
MODEL_INFO_LABELS = (RELEASE_LABEL, "model_hash", "data_hash", "git_commit")
OUTCOMES = ("tp", "fp", "tn", "fn")

# What to pass to prometheus_client (Counter(name, namespace=NAMESPACE) appends `_total`).
CLIENT_NAMES = {
    FEATURE_BIN_TOTAL: "feature_bin",
    SCORE_BIN_TOTAL: "score_bin",
    PREDICTIONS_TOTAL: "predictions",
    EXPECTED_OUTCOME_TOTAL: "expected_outcome",
    LABELLED_OUTCOME_TOTAL: "labelled_outcome",
    MODEL_INFO: "model_info",  # a Gauge set to 1
}
# The labels of each series, in order (the release first).
LABELS = {
    FEATURE_BIN_TOTAL: (RELEASE_LABEL, FEATURE_LABEL, BIN_LABEL),
    SCORE_BIN_TOTAL: (RELEASE_LABEL, BIN_LABEL),
    PREDICTIONS_TOTAL: (RELEASE_LABEL, PREDICTION_LABEL),
    EXPECTED_OUTCOME_TOTAL: (RELEASE_LABEL, OUTCOME_LABEL),
    LABELLED_OUTCOME_TOTAL: (RELEASE_LABEL, OUTCOME_LABEL),
    MODEL_INFO: MODEL_INFO_LABELS,
}

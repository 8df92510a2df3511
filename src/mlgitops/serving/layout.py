"""File names inside a bento and its model store entry: the contract between packaging (which
writes them at build time) and the pod runtime (which reads them). Nothing else lives here, so
the runtime never imports build code."""

from __future__ import annotations

# Where the service is, as `bentoml serve` imports it from the bento's src/.
SERVICE_IMPORT = "mlgitops.serving.service:FraudDetector"
# File names inside the model store entry (model.path_of(...)).
MODEL_FILE = "model.joblib"
# With `package.model_format: onnx` the entry holds the export stage's model.onnx instead of the
# joblib, and the pipeline's scores on probe records to self-check it against at load.
ONNX_MODEL_FILE = "model.onnx"
REFERENCE_SCORES_FILE = "reference_scores.json"
# The served file of each model format.
MODEL_FILES = {"pipeline": MODEL_FILE, "onnx": ONNX_MODEL_FILE}
PROFILE_FILE = "reference_profile.json"
SCHEMA_FILE = "schema.json"
# The train stage's model card (params, model type, ...).
MODEL_CARD_FILE = "model_card.json"
# Monitoring that ships with the model, so rolling back to a release restores them together:
# the score reference (score bins, CBPE calibration) and the generated Prometheus rules.
SCORE_REFERENCE_FILE = "score_reference.json"
RULES_FILE = "prometheus_rules.yaml"
# The pin, beside service.py in the bento's copy of the package (absent in the repository).
PINNED_FILE = "pinned.json"

"""Label Studio's formats, in and out, as plain data (no Label Studio needed).

Out: tasks in Label Studio's JSON import format, a list of `{"data": {...}}`, optionally with
`"predictions": [{"model_version", "score", "result": [...]}]`, and the labelling config
(a Table of the features and a single-choice `fraud`/`legit` control).

In: the three exports Label Studio writes for such a project (its converter,
label_studio_sdk.converter):

- JSON: the tasks as stored, `annotations[].result[].value.choices`, `completed_by` (a user
  id, or an object with an email), `was_cancelled`, `created_at`/`updated_at`;
- JSON_MIN: one object per annotation: the task's data keys at the top level, `id` (Label
  Studio's task id, which is why the sample's id travels as `record_id`), the control's
  name with the choice as a string, `annotator`, `annotation_id`, `created_at`, `updated_at`;
- CSV: the same keys as columns (sorted), dict values JSON-encoded, plus `was_cancelled`.

Tasks without annotations appear in JSON_MIN and CSV with no choice; they are skipped.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import quoteattr

from mlgitops.audit.models import NEGATIVE, POSITIVE

# Task data keys and control names; none collides with the keys Label Studio's exports add
# (id, annotator, annotation_id, created_at, updated_at, lead_time, was_cancelled, agreement).
AUDIT_KEY, RECORD_KEY, FEATURES_KEY = "audit", "record_id", "features"
CONTROL = "label"


def label_config(header: str = "Is this transaction fraudulent?") -> str:
    """The labelling config XML of the project."""
    return (
        "<View>\n"
        f"  <Header value={quoteattr(header)}/>\n"
        f'  <Table name="{FEATURES_KEY}" value="${FEATURES_KEY}"/>\n'
        f'  <Choices name="{CONTROL}" toName="{FEATURES_KEY}" choice="single" '
        'showInline="true" required="true">\n'
        f'    <Choice value="{POSITIVE}"/>\n'
        f'    <Choice value="{NEGATIVE}"/>\n'
        "  </Choices>\n"
        "</View>\n"
    )


def task(
    audit_id: str,
    record_id: str,
    features: dict[str, object],
    prediction: tuple[str, float, int] | None = None,
) -> dict[str, object]:
    """One task; `prediction` (model version, score, label) makes it a pre-annotated one."""
    item: dict[str, object] = {
        "data": {AUDIT_KEY: audit_id, RECORD_KEY: record_id, FEATURES_KEY: features}
    }
    if prediction is not None:
        version, score, label = prediction
        choice = POSITIVE if label else NEGATIVE
        item["predictions"] = [
            {
                "model_version": version,
                "score": score,
                "result": [
                    {
                        "from_name": CONTROL,
                        "to_name": FEATURES_KEY,
                        "type": "choices",
                        "value": {"choices": [choice]},
                    }
                ],
            }
        ]
    return item


@dataclass(frozen=True)
class ExportedLabel:
    """One annotation as an export carries it, before it is checked against the sample."""

    where: str  # "file: task 12" for messages
    audit: object
    record_id: object
    features: object  # a dict, or its JSON text (CSV), or None when the export lacks it
    label: object  # the choice as written (None: no choice)
    annotator: object
    annotated_at: str | None
    cancelled: bool


class ExportFormatError(ValueError):
    """The file is not one of the formats above (the caller names the file)."""


def _annotator(value: object) -> object:
    if isinstance(value, dict):  # older exports expand the user
        return value.get("email") or value.get("id")
    return value


def _when(record: dict) -> str | None:
    value = record.get("updated_at") or record.get("created_at")
    return str(value) if value else None


def _choice(result: list, where: str) -> object:
    """The choice of the audit's control in an annotation's result (None: there is none)."""
    if not isinstance(result, list):
        raise ExportFormatError(f"{where}: 'result' is not a list")
    found = [r for r in result if isinstance(r, dict) and r.get("from_name") == CONTROL]
    if not found:
        names = sorted({str(r.get("from_name")) for r in result if isinstance(r, dict)})
        if names:
            raise ExportFormatError(
                f"{where}: no {CONTROL!r} choice but {', '.join(names)} "
                "(another project's labelling config?)"
            )
        return None
    choices = (found[0].get("value") or {}).get("choices")
    if not isinstance(choices, list) or len(choices) != 1:
        raise ExportFormatError(f"{where}: {CONTROL!r} needs exactly one choice, got {choices!r}")
    return choices[0]


def _label(where: str, task: dict, **annotation: Any) -> ExportedLabel:
    """One annotation of `task`: the audit id, record id and features come from the task."""
    return ExportedLabel(
        where=where,
        audit=task.get(AUDIT_KEY),
        record_id=task.get(RECORD_KEY),
        features=task.get(FEATURES_KEY),
        **annotation,
    )


def parse_json(text: str, name: str) -> list[ExportedLabel]:
    """A JSON or JSON_MIN export (told apart by the full format's `data` and `annotations`)."""
    try:
        items = json.loads(text)
    except json.JSONDecodeError as error:
        raise ExportFormatError(f"not valid JSON: {error}") from None
    if isinstance(items, dict):
        items = [items]  # one task exported alone
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ExportFormatError("expected a list of Label Studio tasks")
    labels: list[ExportedLabel] = []
    for number, item in enumerate(items, start=1):
        where = f"{name}: task {item.get('id', '#' + str(number))}"
        full = "annotations" in item or "completions" in item
        data = item.get("data") if full else item
        if not isinstance(data, dict) or RECORD_KEY not in data:
            raise ExportFormatError(
                f"{where}: no {RECORD_KEY!r} in its data: not a task of `mlgitops audit "
                "sample` (an export of another project?)"
            )
        if full:
            annotations = item.get("annotations", item.get("completions")) or []
            for annotation in annotations:
                if not isinstance(annotation, dict):
                    raise ExportFormatError(f"{where}: an annotation is not an object")
                cancelled = bool(annotation.get("was_cancelled") or annotation.get("skipped"))
                labels.append(
                    _label(
                        where,
                        data,
                        label=None if cancelled else _choice(annotation.get("result", []), where),
                        annotator=_annotator(annotation.get("completed_by")),
                        annotated_at=_when(annotation),
                        cancelled=cancelled,
                    )
                )
        else:
            labels.append(
                _label(
                    where,
                    item,
                    label=item.get(CONTROL),
                    annotator=_annotator(item.get("annotator")),
                    annotated_at=_when(item),
                    cancelled=bool(item.get("was_cancelled")),
                )
            )
    return labels


def is_labelstudio_csv(header: list[str]) -> bool:
    return RECORD_KEY in header


def parse_csv(text: str, name: str) -> list[ExportedLabel]:
    """Label Studio's CSV export of the project."""
    reader = csv.DictReader(io.StringIO(text))
    labels = []
    for number, row in enumerate(reader, start=2):
        where = f"{name}: line {number}"
        cancelled = str(row.get("was_cancelled", "")).strip().lower() in ("true", "1")
        labels.append(
            _label(
                where,
                row,
                label=row.get(CONTROL) or None,
                annotator=row.get("annotator") or None,
                annotated_at=(row.get("updated_at") or row.get("created_at") or None),
                cancelled=cancelled,
            )
        )
    return labels

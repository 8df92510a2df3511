"""Helpers for the audit tests and the docs example: a synthetic scored population with known
truth, simulated annotators who err at known rates, and Label Studio exports of their work
fabricated the way Label Studio's converter writes them (JSON, JSON_MIN, CSV)."""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlgitops.audit.labelstudio import CONTROL, FEATURES_KEY, RECORD_KEY
from mlgitops.profile import CategoricalProfile, NumericProfile, ReferenceProfile

CHANNELS = ("online", "pos", "atm")


@dataclass(frozen=True)
class Population:
    ids: list[str]
    scores: np.ndarray
    truth: np.ndarray  # 0/1
    amounts: np.ndarray
    channels: list[str]


def population(rows: int = 14_000, seed: int = 1, calibration: float = 1.0) -> Population:
    """Scores spread like the default model's on its traffic (median 0.006, 12% above 0.04);
    each row is fraud with probability min(1, calibration * score)."""
    rng = np.random.default_rng(seed)
    scores = np.clip(np.exp(rng.normal(np.log(0.0065), 1.45, rows)), 1e-5, 0.99)
    truth = (rng.random(rows) < np.minimum(1.0, calibration * scores)).astype(int)
    amounts = np.round(np.exp(rng.normal(3.5, 1.0, rows)), 2)
    channels = [CHANNELS[i] for i in rng.integers(0, len(CHANNELS), rows)]
    ids = [f"tx_{i:06d}" for i in range(rows)]
    return Population(ids, scores, truth, amounts, channels)


def profile() -> ReferenceProfile:
    return ReferenceProfile(
        n_rows=1000,
        target="is_fraud",
        positive_class="1",
        label_rate=0.025,
        features={
            "amount": NumericProfile(
                count=1000,
                missing_rate=0.0,
                min=0.0,
                max=1e4,
                mean=50.0,
                std=40.0,
                bin_edges=[10.0, 50.0],
                bin_fractions=[0.3, 0.4, 0.3],
            ),
            "channel": CategoricalProfile(
                count=1000,
                missing_rate=0.0,
                frequencies={c: 1 / len(CHANNELS) for c in CHANNELS},
            ),
        },
    )


def log_lines(people: Population, threshold: float, model_version: str) -> list[str]:
    """Prediction-log lines as the service writes them."""
    lines = []
    for i, record_id in enumerate(people.ids):
        score = float(people.scores[i])
        lines.append(
            json.dumps(
                {
                    "id": record_id,
                    "event_time": f"2025-07-01T00:00:{i % 60:02d}Z",
                    "request_id": f"req-{i // 8:x}",
                    "row": i % 8,
                    "time": f"2025-07-01T00:00:{i % 60:02d}Z",
                    "model_version": model_version,
                    "features": {"amount": float(people.amounts[i]), "channel": people.channels[i]},
                    "score": score,
                    "label": int(score >= threshold),
                }
            )
        )
    return lines


@dataclass(frozen=True)
class Annotator:
    # P(says legit | fraud) and P(says fraud | legit).
    misses: float
    false_alarms: float


# Label Studio exports name annotators by user id: these are users 1, 2 and 3.
ANNOTATORS = (Annotator(0.10, 0.01), Annotator(0.10, 0.01), Annotator(0.20, 0.03))


def annotate(
    tasks: list[dict],
    truth: dict[str, int],
    annotators: tuple[Annotator, ...] = ANNOTATORS,
    overlap: float = 0.3,
    seed: int = 5,
) -> list[dict]:
    """Full Label Studio JSON export of `tasks` (as `audit sample` wrote them): each task
    labelled by one annotator, a share `overlap` by a second one, each erring at their rates."""
    rng = random.Random(seed)
    exported = []
    annotation_id = 1000
    for number, item in enumerate(tasks, start=1):
        data = item["data"]
        record = data[RECORD_KEY]
        chosen = rng.sample(range(len(annotators)), 2 if rng.random() < overlap else 1)
        annotations = []
        for who in chosen:
            person = annotators[who]
            true = truth[record]
            wrong = rng.random() < (person.misses if true else person.false_alarms)
            said = true ^ int(wrong)
            annotation_id += 1
            stamp = f"2025-07-20T10:{number % 60:02d}:{who:02d}.000000Z"
            annotations.append(
                {
                    "id": annotation_id,
                    "completed_by": who + 1,
                    "result": [
                        {
                            "value": {"choices": ["fraud" if said else "legit"]},
                            "id": f"r{annotation_id}",
                            "from_name": CONTROL,
                            "to_name": FEATURES_KEY,
                            "type": "choices",
                            "origin": "manual",
                        }
                    ],
                    "was_cancelled": False,
                    "ground_truth": False,
                    "created_at": stamp,
                    "updated_at": stamp,
                    "lead_time": 12.5,
                    "task": number,
                }
            )
        exported.append(
            {
                "id": number,
                "annotations": annotations,
                "drafts": [],
                "predictions": item.get("predictions", []),
                "data": data,
                "meta": {},
                "created_at": "2025-07-19T09:00:00.000000Z",
                "updated_at": "2025-07-20T11:00:00.000000Z",
                "inner_id": number,
                "total_annotations": len(annotations),
                "cancelled_annotations": 0,
                "total_predictions": len(item.get("predictions", [])),
                "project": 7,
                "updated_by": None,
                "file_upload": "tasks.label_studio.json",
            }
        )
    return exported


def _items(exported: list[dict]):
    """What Label Studio's converter iterates: one item per non-cancelled annotation, and
    one with no output for a task without annotations."""
    for task in exported:
        kept = [a for a in task["annotations"] if not a.get("was_cancelled")]
        if not task["annotations"]:
            yield task, {}, {}
        for annotation in sorted(kept, key=lambda a: a.get("created_at", 0), reverse=True):
            outputs = {}
            for result in annotation["result"]:
                if result["from_name"] == CONTROL:
                    choices = result["value"]["choices"]
                    outputs[CONTROL] = choices[0] if len(choices) == 1 else choices
            yield task, outputs, annotation


def json_min(exported: list[dict]) -> list[dict]:
    records = []
    for task, outputs, annotation in _items(exported):
        record = json.loads(json.dumps(task["data"]))
        record["id"] = task["id"]
        record.update(outputs)
        annotator = annotation.get("completed_by", {})
        record["annotator"] = annotator if isinstance(annotator, int) else None
        record["annotation_id"] = annotation.get("id")
        record["created_at"] = annotation.get("created_at")
        record["updated_at"] = annotation.get("updated_at")
        record["lead_time"] = annotation.get("lead_time")
        records.append(record)
    return records


def csv_export(exported: list[dict]) -> str:
    keys = {"annotator", "annotation_id", "created_at", "updated_at", "lead_time", "was_cancelled"}
    rows = []
    for task, outputs, annotation in _items(exported):
        row = {"id": task["id"], **outputs}
        for name, value in task["data"].items():
            row[name] = json.dumps(value) if isinstance(value, dict | list) else value
        annotator = annotation.get("completed_by", {})
        row["annotator"] = str(annotator) if not isinstance(annotator, dict) else None
        for key in ("created_at", "updated_at", "lead_time", "was_cancelled"):
            row[key] = annotation.get(key)
        row["annotation_id"] = annotation.get("id")
        keys.update(row)
        rows.append(row)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=sorted(keys), quoting=csv.QUOTE_NONNUMERIC)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_exports(exported: list[dict], directory: Path) -> dict[str, Path]:
    """The three exports of one project, as files named like Label Studio names them."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "JSON": directory / "project-7-at-2025-07-20-11-00-full.json",
        "JSON_MIN": directory / "project-7-at-2025-07-20-11-00-min.json",
        "CSV": directory / "project-7-at-2025-07-20-11-00.csv",
    }
    files["JSON"].write_text(json.dumps(exported, indent=2))
    files["JSON_MIN"].write_text(json.dumps(json_min(exported), indent=2))
    files["CSV"].write_text(csv_export(exported))
    return files

"""`mlgitops audit import`: annotators' labels from Label Studio exports or plain CSV files,
checked against the sample, as one table (one row per id and annotator) and its adjudication
(one row per id: the majority label; ties are left out and listed).

Both tables have `id` and `label` columns, so `mlgitops.monitoring.logs.read_labels` reads
them (the adjudicated one is what `mlgitops data ingest --labels` takes).
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter, defaultdict
from pathlib import Path

from mlgitops.audit import labelstudio
from mlgitops.audit.labelstudio import ExportedLabel, ExportFormatError
from mlgitops.audit.models import LABEL_VALUES, Adjudicated, Annotation, ImportSummary
from mlgitops.audit.sample import SampleDesign, SampleRow
from mlgitops.errors import AuditInputError
from mlgitops.io import atomic_write_text

ANNOTATION_COLUMNS = list(Annotation.model_fields)
ADJUDICATED_COLUMNS = list(Adjudicated.model_fields)


def _label(value: object, where: str) -> int:
    text = str(value).strip().lower()
    if text.endswith(".0"):  # a 0/1 column read as numbers
        text = text[:-2]
    if text not in LABEL_VALUES:
        raise AuditInputError(
            f"{where}: label {value!r} is not fraud, legit, 0 or 1 (another project's choices?)"
        )
    return LABEL_VALUES[text]


def _plain_csv(text: str, name: str) -> list[ExportedLabel]:
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("id", "label", "annotator") if c not in (reader.fieldnames or [])]
    if missing:
        raise AuditInputError(
            f"{name}: no {', '.join(repr(c) for c in missing)} column (a plain label file "
            f"has id,label,annotator; a Label Studio CSV has {labelstudio.RECORD_KEY!r})"
        )
    labels = []
    for number, row in enumerate(reader, start=2):
        labels.append(
            ExportedLabel(
                where=f"{name}: line {number}",
                audit=row.get("audit") or None,
                record_id=row["id"],
                features=None,
                label=(row["label"] or "").strip() or None,
                annotator=(row["annotator"] or "").strip() or None,
                annotated_at=row.get("annotated_at") or None,
                cancelled=False,
            )
        )
    return labels


def read_export(path: Path) -> list[ExportedLabel]:
    """The annotations of one file: Label Studio JSON, JSON_MIN or CSV, or a plain CSV."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise AuditInputError(f"{path}: cannot read: {error}") from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return labelstudio.parse_json(text, str(path))
        if suffix == ".csv":
            header = next(csv.reader(io.StringIO(text)), [])
            if labelstudio.is_labelstudio_csv(header):
                return labelstudio.parse_csv(text, str(path))
            return _plain_csv(text, str(path))
    except ExportFormatError as error:
        message = str(error)
        raise AuditInputError(
            message if message.startswith(str(path)) else f"{path}: {message}"
        ) from None
    except csv.Error as error:
        raise AuditInputError(f"{path}: not a readable CSV: {error}") from None
    raise AuditInputError(f"{path}: not a .json or .csv file (Label Studio JSON, JSON_MIN, CSV)")


def _check_task(label: ExportedLabel, design: SampleDesign) -> None:
    """A Label Studio annotation must come from a task of this audit."""
    if label.audit is None and label.features is None:
        return  # a plain CSV without the audit column
    if str(label.audit) != design.audit_id:
        raise AuditInputError(
            f"{label.where}: from audit {label.audit!r}, not this sample's {design.audit_id!r} "
            "(an export of another project?)"
        )
    if label.features is None:
        return
    features = label.features
    if isinstance(features, str):
        try:
            features = json.loads(features)
        except json.JSONDecodeError:
            features = None
    if not isinstance(features, dict) or sorted(features) != sorted(design.features):
        raise AuditInputError(
            f"{label.where}: its {labelstudio.FEATURES_KEY!r} do not match the sample's "
            f"features (an export of another project?)"
        )


def collect(
    exports: dict[str, list[ExportedLabel]], design: SampleDesign, rows: list[SampleRow]
) -> tuple[list[Annotation], ImportSummary]:
    """One annotation per (id, annotator), checked: every id in the sample, every label a
    known choice, no annotator giving one id two different labels."""
    sampled = {row.id for row in rows}
    seen: dict[tuple[str, str], tuple[Annotation, str]] = {}
    unlabelled = cancelled = merged = 0
    for labels in exports.values():
        for label in labels:
            _check_task(label, design)
            if label.cancelled:
                cancelled += 1
                continue
            if label.label is None or str(label.label).strip() == "":
                unlabelled += 1
                continue
            record_id = "" if label.record_id is None else str(label.record_id).strip()
            if record_id not in sampled:
                raise AuditInputError(
                    f"{label.where}: id {record_id!r} is not in the sample (audit "
                    f"{design.audit_id})"
                )
            annotator = "" if label.annotator is None else str(label.annotator).strip()
            if not annotator:
                raise AuditInputError(f"{label.where}: id {record_id!r} has no annotator")
            annotation = Annotation(
                id=record_id,
                label=_label(label.label, label.where),
                annotator=annotator,
                annotated_at=label.annotated_at,
            )
            key = (record_id, annotator)
            if key in seen:
                before, where = seen[key]
                if before.label != annotation.label:
                    raise AuditInputError(
                        f"{label.where}: id {record_id!r} labelled {annotation.label} by "
                        f"{annotator!r}, who labelled it {before.label} in {where}"
                    )
                merged += 1
                # The later annotation time wins (re-exports of one project repeat it).
                if (annotation.annotated_at or "") <= (before.annotated_at or ""):
                    continue
            seen[key] = (annotation, label.where)
    annotations = sorted((a for a, _ in seen.values()), key=lambda a: (a.id, a.annotator))
    if not annotations:
        raise AuditInputError(
            f"{', '.join(exports)}: no labelled annotation ({unlabelled} unlabelled, "
            f"{cancelled} cancelled)"
        )
    adjudicated, ties = adjudicate(annotations)
    summary = ImportSummary(
        files=list(exports),
        annotations=len(annotations),
        ids=len(adjudicated) + len(ties),
        annotators=sorted({a.annotator for a in annotations}),
        skipped_unlabelled=unlabelled,
        skipped_cancelled=cancelled,
        duplicates_merged=merged,
        ties=ties,
    )
    return annotations, summary


def adjudicate(annotations: list[Annotation]) -> tuple[list[Adjudicated], list[str]]:
    """The majority label per id; ids whose annotators split evenly are ties (left out)."""
    by_id: dict[str, list[Annotation]] = defaultdict(list)
    for annotation in annotations:
        by_id[annotation.id].append(annotation)
    result, ties = [], []
    for record_id in sorted(by_id):
        group = by_id[record_id]
        counts = Counter(a.label for a in group)
        (top, top_count), *rest = counts.most_common()
        if rest and rest[0][1] == top_count:
            ties.append(record_id)
            continue
        times = [a.annotated_at for a in group if a.annotated_at]
        result.append(
            Adjudicated(
                id=record_id,
                label=top,
                annotations=len(group),
                agreement=top_count / len(group),
                label_time=max(times) if times else None,
            )
        )
    return result, ties


def table_text(models: list, columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for model in models:
        values = model.model_dump()
        writer.writerow(["" if values[c] is None else values[c] for c in columns])
    return out.getvalue()


def write_labels(
    annotations: list[Annotation], out: Path, adjudicated_out: Path
) -> list[Adjudicated]:
    adjudicated, _ = adjudicate(annotations)
    atomic_write_text(out, table_text(annotations, ANNOTATION_COLUMNS))
    atomic_write_text(adjudicated_out, table_text(adjudicated, ADJUDICATED_COLUMNS))
    return adjudicated


def read_annotations(path: Path, design: SampleDesign, rows: list[SampleRow]) -> list[Annotation]:
    """The labelled table `import` wrote (or any id,label[,annotator] CSV), checked again."""
    path = Path(path)
    if not path.exists():
        raise AuditInputError(f"{path}: not found (run `mlgitops audit import`)")
    annotations, _ = collect({str(path): read_export(path)}, design, rows)
    return annotations

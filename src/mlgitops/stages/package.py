"""Stage `package`: model store -> content-addressed bento -> archive -> release record.

Only a model the gate passed is packaged. On any other verdict the stage writes nothing, exits
0 and says so in one line (verdict, the gate report, "release not changed"): release.json, the
k8s pin and the bento archive keep naming the champion, and `dvc exp run` finishes with the
verdict recorded in reports/gate.json (src/mlgitops/verdict.py). The record and the bento
version that hashes it are mlgitops.packaging.release's; the bento is packaging/bento.py's.
"""

from __future__ import annotations

from mlgitops.config import Params
from mlgitops.packaging.challenger import pin_section, read_challenger, save_challenger
from mlgitops.packaging.release import (
    checked_reference,
    make_release,
    served_file,
    shipped_monitoring,
)
from mlgitops.release import load_release, write_release
from mlgitops.verdict import not_released, require_kept, tree_verdict


def run(params: Params) -> str:
    from mlgitops.packaging import bento

    # Nothing is read or written for a model the gate did not pass (src/mlgitops/verdict.py).
    report = tree_verdict(params)
    if report.verdict != "PASS":
        paths = params.paths
        require_kept(params, report, [paths.release, paths.k8s_release_patch, paths.bento_archive])
        current = load_release(paths.release)
        return not_released(
            params,
            report,
            f"{paths.release} and {paths.k8s_release_patch} still pin {current.bento_tag}, "
            f"{paths.bento_archive} is its bento",
        )
    requirements = bento.pinned_requirements(params.paths.requirements_lock)
    experiment = params.active_experiment
    # Read (and checked) before anything is written, like the gate's verdict.
    challenger = read_challenger(experiment) if experiment is not None else None
    record = make_release(params, requirements, challenger)
    model_file = served_file(params)
    pipeline = record.model_format == "pipeline"
    model_tag = bento.save_model(
        name=record.bento_name,
        version=record.bento_version,
        model_file=model_file,
        profile_file=params.paths.profile,
        schema_file=params.paths.schema_file,
        model_card_file=params.paths.model_card,
        metadata=record.model_dump(mode="json", exclude_none=True),
        extra_files=shipped_monitoring(params),
        model_format=record.model_format,
        reference_scores=None if pipeline else checked_reference(params, model_file),
    )
    pin = None
    if challenger is not None and record.experiment is not None:
        save_challenger(challenger)
        pin = pin_section(record.experiment, challenger)
    bento_tag = bento.build_bento(
        bento_name=record.bento_name,
        version=record.bento_version,
        model_tag=model_tag,
        release=record.model_dump(mode="json", exclude_none=True),
        requirements=requirements,
        experiment=pin,
    )
    bento.export_bento(bento_tag, params.paths.bento_archive)
    # Written last: release.json and the k8s pin only ever name a bento that exists.
    write_release(record, params.paths.release, params.paths.k8s_release_patch)
    served = "pipeline" if pipeline else f"{model_file} (exported ONNX)"
    if record.experiment is not None:
        served += (
            f" and, in {record.experiment.mode} mode, challenger "
            f"{record.experiment.challenger_model_tag} ({record.experiment.challenger_revision})"
        )
    return (
        f"bento {bento_tag} serving the {served}, image {record.image}, "
        f"release in {params.paths.release}"
    )

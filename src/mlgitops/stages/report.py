"""Stage `report`: the stakeholder report of the release, `paths.report_html` and its JSON twin.

It runs after `package` and reads release.json: the bento tag is what stakeholders approve and
operators deploy, and it exists only once package has run. The report ships with the model in
Git (committed with the release.json it describes, readable at any commit through `mlgitops
report --rev`), not inside the bento: in the bento its wording (daily volume, class words)
would be part of the bento version and a new sentence would mean a new image. So package never
depends on the report and dvc.yaml stays acyclic: ... -> evaluate -> package -> report.

Everything is computed before anything is written, so a failure leaves the previous files.

It is the report of the release, so for a model the gate did not pass (an experiment that lost)
it writes nothing and says so: the release did not change, and neither does its report; the
challenger's figures are in reports/evaluate.json and its comparison in the gate report.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlgitops.config import Params
from mlgitops.errors import ArtifactError
from mlgitops.io import atomic_write_text, load_pipeline, read_json
from mlgitops.profile import load_profile
from mlgitops.records import load_metrics
from mlgitops.release import load_release
from mlgitops.reports.build import ReportInputs, build_report
from mlgitops.reports.history import previous_release
from mlgitops.reports.render import render
from mlgitops.schema import load_schema
from mlgitops.verdict import not_released, require_kept, tree_verdict

# The page is one file a stakeholder mails around; past this it is a sign of runaway tables.
MAX_HTML_BYTES = 1_000_000


def run(params: Params) -> str:
    paths = params.paths
    verdict = tree_verdict(params)
    if verdict.verdict != "PASS":
        require_kept(params, verdict, [paths.report_html, paths.report_json])
        return not_released(
            params,
            verdict,
            f"{paths.report_html} still describes {load_release(paths.release).bento_tag}; this "
            f"model's test figures are in {paths.metrics}",
        )
    schema = load_schema(paths.schema_file)
    model = load_pipeline(paths.model)
    release = load_release(paths.release)
    validation = pd.read_parquet(paths.validation)
    test = pd.read_parquet(paths.test)
    inputs = ReportInputs(
        params=params,
        release=release,
        metrics=load_metrics(paths.metrics),
        raw_metrics=read_json(paths.metrics),
        profile=load_profile(paths.profile),
        train=pd.read_parquet(paths.train),
        validation=validation,
        test=test,
        validation_scores=model.predict_proba(validation[schema.feature_names])[:, 1],
        test_scores=model.predict_proba(test[schema.feature_names])[:, 1],
        # The repository holding the release record, wherever the stage runs from.
        previous=previous_release(Path(paths.release).resolve().parent, release),
    )
    report = build_report(inputs)
    html = render(report)
    size = len(html.encode("utf-8"))
    if size > MAX_HTML_BYTES:
        raise ArtifactError(
            f"{paths.report_html}: {size:,} bytes, over the {MAX_HTML_BYTES:,} budget"
        )
    atomic_write_text(paths.report_json, report.model_dump_json(indent=2) + "\n")
    atomic_write_text(paths.report_html, html)
    return f"{paths.report_html} ({size:,} bytes): {report.headline.sentence}"

"""`mlgitops audit`: human audits of production predictions (mlgitops.audit).

`sample` draws a stratified sample of a prediction log with its tasks for Label Studio,
`import` turns the annotators' exports into a labelled table, `report` weights the labels
back to all logged traffic.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mlgitops import errors as e
from mlgitops.cli import helptext
from mlgitops.cli.exitcodes import epilog
from mlgitops.cli.options import ParamsOption

app = helptext.app(help="Human audits of production predictions: sample, import labels, report.")

SampleOption = typer.Option(..., "--sample", help="The directory `audit sample` wrote.")


@app.command(epilog=epilog(e.ArtifactError, e.AuditInputError))
def sample(
    predictions: list[str] = typer.Option(
        ..., "--predictions", "-p", help="Prediction logs (files, directories, .gz, URLs)."
    ),
    out: Path = typer.Option(..., "--out", help="Directory for the sample and its tasks."),
    size: int | None = typer.Option(None, "--size", min=2, help="Default: audit.sample_size."),
    model_version: str | None = typer.Option(
        None, help="Model version to audit. Default: model_tag of release.json."
    ),
    show_prediction: bool = typer.Option(
        False, "--show-prediction", help="Put the model's label in the tasks (not blind)."
    ),
    params: Path = ParamsOption,
) -> None:
    """Draw a stratified sample of logged predictions and write the tasks to label it:
    sample.csv, design.json, tasks.csv, tasks.label_studio.json and label_config.xml."""
    from mlgitops.audit.sample import SampleRequest, draw_sample, read_log, write_sample
    from mlgitops.config import load_params
    from mlgitops.profile import load_profile
    from mlgitops.release import load_release

    loaded = load_params(params)
    release = load_release(loaded.paths.release)
    profile = load_profile(loaded.paths.profile)
    frame, stats = read_log(list(predictions), profile)
    request = SampleRequest(
        model_version=model_version or release.model_tag,
        threshold=release.threshold,
        size=size or loaded.audit.sample_size,
        blind=loaded.audit.blind and not show_prediction,
        sources=list(predictions),
        malformed_lines=stats.malformed,
        release_metrics=release.metrics,
    )
    drawn = draw_sample(frame, list(profile.features), request, loaded.audit)
    write_sample(out, drawn)
    design = drawn.design
    note = stats.note()
    skipped = f"; {note}" if note else ""
    typer.echo(
        f"audit {design.audit_id}: sampled {design.sample_size} of {design.population} "
        f"predictions of {design.model_version} in {len(design.strata)} strata into {out}"
        f"{skipped}"
    )


@app.command("import", epilog=epilog(e.AuditInputError))
def import_(
    files: list[Path] = typer.Argument(
        ..., help="Label Studio exports (JSON, JSON_MIN, CSV) or id,label,annotator CSVs."
    ),
    sample_dir: Path = SampleOption,
    out: Path = typer.Option(..., "--out", help="The labelled table: one row per id/annotator."),
    adjudicated: Path | None = typer.Option(
        None, "--adjudicated", help="One row per id (majority). Default: OUT.adjudicated.csv."
    ),
) -> None:
    """Check the annotators' labels against the sample and write them as CSV tables."""
    from mlgitops.audit.labels import collect, read_export, write_labels
    from mlgitops.audit.sample import load_sample

    design, rows = load_sample(sample_dir)
    exports = {str(path): read_export(path) for path in files}
    annotations, summary = collect(exports, design, rows)
    target = adjudicated or out.with_name(out.name.removesuffix(".csv") + ".adjudicated.csv")
    decided = write_labels(annotations, out, target)
    ties = f", {len(summary.ties)} tied (left out)" if summary.ties else ""
    typer.echo(
        f"imported {summary.annotations} labels of {summary.ids} ids by "
        f"{len(summary.annotators)} annotators into {out}; {len(decided)} adjudicated into "
        f"{target}{ties}"
    )


@app.command(epilog=epilog(e.AuditInputError))
def report(
    sample_dir: Path = SampleOption,
    labels: Path = typer.Option(..., "--labels", help="The labelled table `audit import` wrote."),
    out: Path | None = typer.Option(
        None, "--out", help="Write the Markdown here (and the plot beside it, as .svg)."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write the report as JSON here."),
) -> None:
    """Weighted precision, FPR, FNR and fraud rate with intervals, agreement and the most
    surprising disagreements, as Markdown (printed, or written with --out)."""
    from mlgitops.audit.labels import read_annotations
    from mlgitops.audit.report import build_report, markdown, plot_svg
    from mlgitops.audit.sample import load_sample
    from mlgitops.io import atomic_write_text, save_model_json

    design, rows = load_sample(sample_dir)
    annotations = read_annotations(labels, design, rows)
    result = build_report(design, rows, annotations)
    if out is None:
        typer.echo(markdown(result), nl=False)
    else:
        plot, image = out.with_suffix(".svg"), plot_svg(result)
        if image:
            atomic_write_text(plot, image)
        atomic_write_text(out, markdown(result, plot.name if image else None))
        typer.echo(
            f"audit {result.audit_id}: report in {out}" + (f", plot in {plot}" if image else "")
        )
    if json_out is not None:
        save_model_json(result, json_out)

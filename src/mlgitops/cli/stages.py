"""`mlgitops stage NAME`: the entry points that dvc.yaml runs, one per pipeline stage."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

from mlgitops import errors as e
from mlgitops.cli import helptext
from mlgitops.cli.exitcodes import epilog
from mlgitops.cli.options import ParamsOption

app = helptext.app(
    help="Run one pipeline stage (dvc.yaml calls these; use `dvc repro` to run the pipeline).",
    no_args_is_help=True,
)

# Per stage: its help, and the exit codes its help ends with.
_STAGES: dict[str, tuple[str, str]] = {
    "validate": (
        "Check the schema and quality of the data; write the report and the schema.",
        epilog(e.DataError, e.DataQualityError, e.EngineError, e.PartitionError),
    ),
    "split": (
        "Split train/test (by time or stratified) and profile the training data.",
        epilog(e.DataError, e.DataQualityError, e.ArtifactError, e.EngineError, e.PartitionError),
    ),
    "tune": (
        "Search hyperparameters by CV on the training split; write the chosen train config.",
        epilog(e.DataQualityError, e.ArtifactError),
    ),
    "train": (
        "Fit the scikit-learn pipeline (tune's choice, or params.yaml's train config).",
        epilog(e.ArtifactError),
    ),
    "evaluate": (
        "Choose the threshold on validation; measure the test split; record, metrics and plots.",
        epilog(e.DataQualityError, e.ArtifactError),
    ),
    "gate": (
        "Judge this model against the release at gate.base: PASS, FAIL or INCONCLUSIVE.",
        epilog(e.ArtifactError, e.GitError, e.GateError),
    ),
    "score_reference": (
        "Score the held-out splits; calibration, score bins, operating point.",
        epilog(e.ArtifactError, e.PartitionError),
    ),
    "rules": (
        "Generate the Prometheus alert rules (rule file and PrometheusRule).",
        epilog(e.ArtifactError, e.GateFailedError, e.GateInconclusiveError),
    ),
    "export": (
        "Export ONNX, quantized, pruned, C and JS scorers; gate them on the test split.",
        epilog(e.DataError, e.DataQualityError, e.ArtifactError, e.ExportError),
    ),
    "package": (
        "Save the model to BentoML, build the content-addressed bento, write release.json.",
        epilog(
            e.ArtifactError,
            e.PackagingError,
            e.GitError,
            e.GateFailedError,
            e.GateInconclusiveError,
        ),
    ),
    "report": (
        "Write the stakeholder report of the release (offline HTML) and its JSON twin.",
        epilog(e.ArtifactError, e.GateFailedError, e.GateInconclusiveError),
    ),
}


def _make_command(stage: str) -> None:
    def command(params: Path = ParamsOption) -> None:
        from mlgitops.config import load_params

        module = importlib.import_module(f"mlgitops.stages.{stage}")
        summary = module.run(load_params(params))
        typer.echo(f"{stage}: {summary}")

    text, exits = _STAGES[stage]
    command.__doc__ = text
    app.command(name=stage, epilog=exits)(command)


for _stage in _STAGES:
    _make_command(_stage)

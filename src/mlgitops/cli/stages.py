"""`mlgitops stage NAME`: the entry points that dvc.yaml runs, one per pipeline stage."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

from mlgitops.cli.options import ParamsOption

app = typer.Typer(
    help="Run one pipeline stage (dvc.yaml calls these; use `dvc repro` to run the pipeline).",
    no_args_is_help=True,
)

_STAGES = {
    "validate": "Check the schema and quality of the data; write the report and the schema.",
    "split": "Split train/test (by time or stratified) and profile the training data.",
    "tune": "Search hyperparameters by CV on the training split; write the chosen train config.",
    "train": "Fit the scikit-learn pipeline (tune's choice, or params.yaml's train config).",
    "evaluate": "Choose the threshold on validation; measure the test split; metrics and plots.",
    "gate": "Compare this model with the release at gate.base on the test rows: PASS/FAIL/...",
    "score_reference": "Score the held-out splits; calibration, score bins, operating point.",
    "rules": "Generate the Prometheus alert rules (rule file and PrometheusRule).",
    "export": "Export ONNX, quantized, pruned, C and JS scorers; gate them on the test split.",
    "package": "Save the model to BentoML, build the content-addressed bento, write release.json.",
    "report": "Write the stakeholder report of the release (offline HTML) and its JSON twin.",
}


def _make_command(stage: str) -> None:
    def command(params: Path = ParamsOption) -> None:
        from mlgitops.config import load_params

        module = importlib.import_module(f"mlgitops.stages.{stage}")
        summary = module.run(load_params(params))
        typer.echo(f"{stage}: {summary}")

    command.__doc__ = _STAGES[stage]
    app.command(name=stage)(command)


for _stage in _STAGES:
    _make_command(_stage)

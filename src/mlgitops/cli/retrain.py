"""`mlgitops retrain`: the retraining loop up to a pull request (see mlgitops.retrain.loop)."""

from __future__ import annotations

from pathlib import Path

import typer

from mlgitops import errors as e
from mlgitops.cli.exitcodes import epilog
from mlgitops.cli.options import BatchArgument, LabelsOption, PredictionsOption, SourceOption


def register(app: typer.Typer) -> None:
    @app.command(
        epilog=epilog(
            e.DataError,
            e.DataQualityError,
            e.ArtifactError,
            e.GitError,
            e.MonitoringInputError,
            e.GateError,
            e.GateFailedError,
            e.GateInconclusiveError,
            e.PartitionError,
            e.ReleaseNotPassedError,
            e.IngestError,
            e.RetrainError,
            ok="PASS: branch and PR body made",
        )
    )
    def retrain(
        batch: list[str] = BatchArgument,
        predictions: list[str] = PredictionsOption,
        labels: list[str] = LabelsOption,
        source: str | None = SourceOption,
        set_: list[str] = typer.Option(
            [], "--set", help="Change a param for the challenger: SECTION.KEY=VALUE (repeatable)."
        ),
        base: str | None = typer.Option(None, help="Base branch. Default: retrain.base."),
        branch: str | None = typer.Option(None, help="Branch to create. Default: derived."),
        pr_body: Path | None = typer.Option(None, help="Where to write the pull-request body."),
        repo: Path = typer.Option(Path(), help="The project's Git repository."),
        allow_feedback_labels: bool = typer.Option(
            False,
            "--allow-feedback-labels",
            help="Ingest labels from the service's /feedback log. "
            "Default: ingest.allow_feedback_labels.",
        ),
    ) -> None:
        """Ingest fresh labelled data, `dvc repro` with the gate, and on PASS commit on a new
        branch and write the PR body.

        Exits 17 (FAIL) or 18 (INCONCLUSIVE) leaving main as it was, and keeps the challenger's
        gate report and metrics under paths.retrain_evidence (reports/retrain/<branch>/), the
        dvc repro log under .git/mlgitops/retrain/. Progress: one line per pipeline stage on
        stderr (redrawn in place on a terminal). Never deploys: merging does."""
        from mlgitops.data.ingest import IngestRequest
        from mlgitops.progress import StepLog
        from mlgitops.retrain.loop import RetrainRequest, parse_override
        from mlgitops.retrain.loop import retrain as run

        request = RetrainRequest(
            fresh=IngestRequest(
                batch=tuple(batch or ()),
                predictions=tuple(predictions),
                labels=tuple(labels),
                source=source,
                allow_feedback_labels=allow_feedback_labels,
            ),
            overrides=tuple(parse_override(item) for item in set_),
            base=base,
            branch=branch,
            pr_body=pr_body,
        )
        import signal

        # A SIGTERM (a CI job cancelled) unwinds like Ctrl-C, so the temporary worktree goes.
        def _terminate(signum: int, _frame: object) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, _terminate)
        status = StepLog("retrain")
        try:
            result = run(repo, request, progress=status)
        finally:
            status.close()
        typer.echo(result.line())

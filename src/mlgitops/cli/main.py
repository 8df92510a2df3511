"""Root of the `mlgitops` CLI. Sub-command modules import their heavy dependencies lazily,
inside the command functions, so `mlgitops --help` stays fast."""

from __future__ import annotations

import sys

import typer

from mlgitops import __version__
from mlgitops.cli import (
    ab,
    attest,
    audit,
    data,
    deploy,
    helptext,
    image,
    monitor,
    monitor_demo,
    report,
    retrain,
    revert,
    serve,
    stages,
    summary,
)
from mlgitops.cli.exitcodes import every_code
from mlgitops.errors import MlgitopsError

app = helptext.app(
    name="mlgitops",
    help="Git-native model and dataset versioning with GitOps deploys to Kubernetes.",
    epilog=every_code(),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.add_typer(stages.app, name="stage")
app.add_typer(image.app, name="image")
app.add_typer(report.app, name="report")
app.add_typer(revert.app, name="revert")
app.add_typer(ab.app, name="ab")
app.add_typer(audit.app, name="audit")
serve.register(app)
summary.register(app)
deploy.register(app)
attest.register(app)
monitor.register(app)
monitor_demo.register(app)
retrain.register(app)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"mlgitops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        callback=_version_callback,
        is_eager=True,
    ),
) -> None:
    """Git-native model and dataset versioning with GitOps deploys to Kubernetes."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every MlgitopsError becomes one line on stderr and its exit code.

    Typer runs in standalone mode, so usage errors print their usage and exit 2 as usual;
    errors of ours pass through it and are turned into one line here.
    """
    try:
        app(args=argv, prog_name="mlgitops")
    except SystemExit as exit_:
        code = exit_.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except MlgitopsError as error:
        typer.echo(f"error: {error}", err=True)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

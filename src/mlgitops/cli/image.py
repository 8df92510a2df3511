"""`mlgitops image`: build the release's OCI image with buildah (no Docker) and push it.

Thin wrappers over mlgitops.image; heavy imports stay inside the commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mlgitops import errors as e
from mlgitops.cli import helptext
from mlgitops.cli.exitcodes import epilog

_EXITS = epilog(e.ArtifactError, e.ImageBuildError, e.GitError)

app = helptext.app(
    help="Build the release's OCI image with buildah (no Docker, no network) and push it.",
    no_args_is_help=True,
)

_REV = typer.Option(
    None, "--rev", help="Git revision whose release to use (default: the working tree)."
)
_BASE_IMAGE = typer.Option(
    None,
    "--base-image",
    help="Use this base (e.g. python:3.11-slim, pulled) instead of the debootstrap one.",
)
_FORCE = typer.Option(False, "--force", help="Rebuild even if the image exists.")
_CACHE = typer.Option(
    None, "--cache-dir", help="Cache for base image, wheels and buildah storage.",
    envvar="MLGITOPS_CACHE",
)  # fmt: skip


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


@app.command(epilog=_EXITS)
def build(
    rev: str | None = _REV,
    archive: Path | None = typer.Option(
        None,
        "--archive",
        help="Build this bento archive instead of the release's.",
        exists=True,
        dir_okay=False,
    ),
    repository: str | None = typer.Option(
        None,
        "--repository",
        help="Image repository (default: the release's image).",
    ),
    base_image: str | None = _BASE_IMAGE,
    force: bool = _FORCE,
    cache_dir: Path | None = _CACHE,
) -> None:
    """Build REPO:VERSION (VERSION = bento version) from the bento archive; a no-op if it exists."""
    from mlgitops.errors import ImageBuildError
    from mlgitops.image.build import build_image
    from mlgitops.image.cache import default_cache_dir
    from mlgitops.image.source import resolve_bento_source

    cache = cache_dir or default_cache_dir()
    version: str | None = None
    if archive is None:
        source = resolve_bento_source(rev, cache)
        archive, version = source.archive, source.version
        repository = repository or source.image_repository
    elif rev is not None:
        raise ImageBuildError("--archive and --rev exclude each other")
    elif repository is None:
        raise ImageBuildError("--archive needs --repository")
    result = build_image(
        archive, repository, version, cache_dir=cache, base_image=base_image, force=force
    )
    state = "built" if result.built else "already built, nothing to do"
    typer.echo(f"{result.ref}: {state} ({_megabytes(result.size_bytes)}, {result.seconds:.1f}s)")
    typer.echo(f"image id {result.image_id}, manifest {result.digest}, bento {result.bento_tag}")


@app.command("pipeline", epilog=_EXITS)
def pipeline(
    rev: str = typer.Option("HEAD", "--rev", help="Git revision to build (its files and lock)."),
    repository: str | None = typer.Option(
        None,
        "--repository",
        help="Image repository (default: `pipeline` beside package.image_repository).",
    ),
    base_image: str | None = _BASE_IMAGE,
    force: bool = _FORCE,
    cache_dir: Path | None = _CACHE,
) -> None:
    """Build the pipeline image REPO:<commit> (the project and its whole lock) that k8s/dask
    runs for the Dask scheduler, workers and the monitor; a no-op if it exists."""
    from mlgitops.image.cache import default_cache_dir
    from mlgitops.image.pipeline import build_pipeline_image

    result = build_pipeline_image(
        None,
        repository,
        rev=rev,
        cache_dir=cache_dir or default_cache_dir(),
        base_image=base_image,
        force=force,
    )
    state = "built" if result.built else "already built, nothing to do"
    typer.echo(f"{result.ref}: {state} ({_megabytes(result.size_bytes)}, {result.seconds:.1f}s)")
    typer.echo(f"image id {result.image_id}, manifest {result.digest}, commit {result.commit}")


@app.command(epilog=_EXITS)
def context(
    out: Path = typer.Option(
        ...,
        "--out",
        help="Empty or new directory to write the build context to.",
        file_okay=False,
    ),
    rev: str | None = _REV,
    archive: Path | None = typer.Option(
        None,
        "--archive",
        help="Use this bento archive instead of the release's.",
        exists=True,
        dir_okay=False,
    ),
    cache_dir: Path | None = _CACHE,
) -> None:
    """Write the build context (Containerfile, bento, wheelhouse) for another builder."""
    from mlgitops.errors import ImageBuildError
    from mlgitops.image.build import prepare_build_context
    from mlgitops.image.cache import default_cache_dir
    from mlgitops.image.source import resolve_bento_source

    cache = cache_dir or default_cache_dir()
    if out.exists() and any(out.iterdir()):
        raise ImageBuildError(f"{out}: not empty")
    if archive is None:
        archive = resolve_bento_source(rev, cache).archive
    elif rev is not None:
        raise ImageBuildError("--archive and --rev exclude each other")
    out.mkdir(parents=True, exist_ok=True)
    info, _ = prepare_build_context(archive, out, cache)
    typer.echo(f"build context of bento {info.tag} in {out}")
    typer.echo(
        f"e.g. docker build -f {out}/Containerfile --build-arg BASE_IMAGE=python:3.11-slim "
        f"-t REPO:{info.version} {out}"
    )


@app.command(epilog=_EXITS)
def push(
    registry: str = typer.Option(
        ..., "--registry", help="Destination HOST[:PORT]/REPO; the tag is the bento version."
    ),
    rev: str | None = _REV,
    image: str | None = typer.Option(
        None, "--image", help="Local image REPO:VERSION to push (default: the release's image)."
    ),
    tls_verify: bool = typer.Option(
        True, "--tls-verify/--no-tls-verify", help="Check the registry's TLS certificate."
    ),
    verify: bool = typer.Option(
        True,
        "--verify/--no-verify",
        help="Check the registry's manifest digest and config against the local image.",
    ),
    verify_pull: bool = typer.Option(
        False, "--verify-pull", help="Also pull it back into empty storage and compare digests."
    ),
    authfile: Path | None = typer.Option(
        None,
        "--authfile",
        envvar="REGISTRY_AUTH_FILE",
        help="Registry credentials (default: the file `buildah login` writes).",
    ),
    cache_dir: Path | None = _CACHE,
) -> None:
    """Push the built image to a registry and print its digest."""
    from mlgitops.image.cache import default_cache_dir
    from mlgitops.image.push import pull_and_verify, push_image

    cache = cache_dir or default_cache_dir()
    image = _image_to_use(rev, image, cache)
    result = push_image(
        image, registry, cache_dir=cache, tls_verify=tls_verify, verify=verify, authfile=authfile
    )
    if verify_pull:
        pull_and_verify(
            result.remote_ref,
            result.digest,
            result.image_id,
            tls_verify=tls_verify,
            cache_dir=cache,
            authfile=authfile,
        )
    checked = "verified" if result.verified else "not verified"
    typer.echo(f"{result.remote_ref} {result.digest} ({checked})")
    typer.echo(f"pinned: {result.pinned}")


@app.command("run", epilog=_EXITS)
def run_image(
    rev: str | None = _REV,
    image: str | None = typer.Option(None, "--image", help="Local image REPO:VERSION to run."),
    port: int = typer.Option(3000, "--port", help="Port on 127.0.0.1 (host network)."),
    cache_dir: Path | None = _CACHE,
) -> None:
    """Run the built image with `buildah run` until Ctrl-C (a local smoke test)."""
    import time

    from mlgitops.image.buildah import Buildah
    from mlgitops.image.cache import default_cache_dir
    from mlgitops.image.run import running_container

    cache = cache_dir or default_cache_dir()
    image = _image_to_use(rev, image, cache)
    with running_container(image, Buildah.for_cache(cache), port=port) as container:
        typer.echo(f"{image} ready on {container.base_url} (log {container.log}); Ctrl-C stops it")
        try:
            while container.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            typer.echo("stopping")


def _image_to_use(rev: str | None, image: str | None, cache: Path) -> str:
    """The explicit `--image`, else the image of the bento of `--rev` (default HEAD)."""
    from mlgitops.image.build import image_ref
    from mlgitops.image.push import split_tag
    from mlgitops.image.source import resolve_bento_source

    if image is not None:
        return image_ref(*split_tag(image))
    source = resolve_bento_source(rev, cache)
    return image_ref(source.image_repository, source.version)

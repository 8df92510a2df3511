"""`mlgitops attest | verify | trust`: sign a release, check it offline, manage the trust root
(docs/attest.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from mlgitops import errors
from mlgitops.attest import DEFAULT_TRUST_ROOT, SIGNING_KEY_ENV
from mlgitops.cli import helptext
from mlgitops.cli.deploy import AuthfileOption, RegistryTlsOption, RepoOption
from mlgitops.cli.exitcodes import epilog

TrustRootOption = typer.Option(
    None,
    "--trust-root",
    help=f"The trusted public keys (default: {DEFAULT_TRUST_ROOT} of --repo's working tree, "
    "never the revision's own).",
)


def trust_root_path(repo: Path, given: Path | None) -> Path:
    return given if given is not None else repo / DEFAULT_TRUST_ROOT


def _now(text: str | None, option: str) -> datetime:
    from mlgitops.attest.keys import parse_time
    from mlgitops.errors import ConfigError, TrustRootError

    if text is None:
        return datetime.now(UTC)
    try:
        return parse_time(text, option)
    except TrustRootError as error:
        raise ConfigError(str(error)) from None


def attest_command(
    key: Path = typer.Option(
        ...,
        "--key",
        envvar=SIGNING_KEY_ENV,
        help=f"PEM file of the EC P-256 signing key (${SIGNING_KEY_ENV}); held by CI.",
    ),
    rev: str = typer.Option("HEAD", "--rev", help="The revision whose release to sign."),
    image_digest: str | None = typer.Option(
        None,
        "--image-digest",
        help="The image's manifest digest (sha256:...); default: asked from its registry.",
    ),
    dpkg_status: Path | None = typer.Option(
        None,
        "--dpkg-status",
        help="The image's /var/lib/dpkg/status, for the SBOM's Debian packages with versions "
        "(default: the base recipe's packages, without versions).",
    ),
    builder_id: str = typer.Option(
        "urn:mlgitops:attest:local", "--builder-id", help="SLSA builder.id (the CI job's URI)."
    ),
    replace: bool = typer.Option(False, "--replace", help="Sign an attested release anew."),
    trust_root: Path | None = TrustRootOption,
    registry_tls_verify: bool = RegistryTlsOption,
    authfile: Path | None = AuthfileOption,
    repo: Path = RepoOption,
) -> None:
    """Sign the release of a revision: an in-toto statement (SLSA provenance) in a DSSE
    envelope, an OpenSSF model-signing bundle and a CycloneDX SBOM, written under
    attestations/<bento_version>/ for the trusted CI job to commit. Not a pipeline stage."""
    from mlgitops.attest.attest import attest
    from mlgitops.deploy.images import RegistryAccess, resolve

    access = RegistryAccess(tls_verify=registry_tls_verify, authfile=authfile)

    def ask(image: str) -> str:
        return resolve(image, access, lambda line: typer.echo(line, err=True)).digest

    done = attest(
        repo,
        key_file=key,
        trust_root=trust_root_path(repo, trust_root),
        rev=rev,
        image_digest=image_digest,
        resolve_digest=ask,
        dpkg_status=dpkg_status,
        builder_id=builder_id,
        replace=replace,
    )
    typer.echo(
        f"attested {done.bento_tag} ({done.commit[:12]}, image {done.image_digest[:19]}) with "
        f"key {done.key_id} at {done.signed_at}: {done.directory}"
    )


def verify_command(
    rev: str = typer.Option("HEAD", "--rev", help="The revision whose release to verify."),
    trust_root: Path | None = TrustRootOption,
    repo: Path = RepoOption,
) -> None:
    """Check a revision's release against its signed attestation, offline: the signature by a
    trusted key valid when it signed, every hash against the files at the revision (DVC cache
    for the model), the SBOM, the model-signing bundle, the gate verdict PASS."""
    from mlgitops.attest.verify import verify

    result = verify(repo, rev, trust_root=trust_root_path(repo, trust_root))
    typer.echo(
        f"verified {result.bento_tag} at {rev} ({result.commit[:12]}): signed by key "
        f"{result.key_id} at {result.signed_at} for commit {result.attested_commit[:12]}; "
        f"image {result.image}@{result.image_digest}"
    )


TRUST_CODES = epilog(errors.TrustRootError)
trust_app = helptext.app(
    help="The trust root of release attestations (trust/keys.yaml).", no_args_is_help=True
)


@trust_app.command("new-key", epilog=TRUST_CODES)
def new_key_command(
    private: Path = typer.Option(..., "--private", help="Where to write the private key (0600)."),
    public: Path = typer.Option(..., "--public", help="Where to write the public key."),
) -> None:
    """Make an EC P-256 key pair. The private key belongs in CI's secret store, not in Git."""
    import os

    from mlgitops.attest.keys import generate_key_pem
    from mlgitops.errors import ConfigError

    for path in (private, public):
        if path.exists():
            raise ConfigError(f"{path}: exists; not overwritten")
    secret, shared = generate_key_pem()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secret)
    public.write_bytes(shared)
    typer.echo(f"wrote {private} (keep it secret) and {public}")


@trust_app.command("add-key", epilog=TRUST_CODES)
def add_key_command(
    key_id: str = typer.Option(..., "--id", help="The key's id (DSSE keyid)."),
    public_key: Path = typer.Option(..., "--public-key", help="PEM file of the public key."),
    not_before: str | None = typer.Option(
        None, "--not-before", help="Start of validity, RFC 3339 (default: now)."
    ),
    comment: str = typer.Option("", "--comment", help="Who holds it, where."),
    trust_root: Path | None = TrustRootOption,
    repo: Path = RepoOption,
) -> None:
    """Add a public key to the trust root (commit the file; CODEOWNERS review it)."""
    from mlgitops.attest.keys import add_key, format_time
    from mlgitops.errors import TrustRootError

    try:
        pem = public_key.read_bytes()
    except OSError as error:
        raise TrustRootError(f"{public_key}: cannot read ({error.strerror})") from None
    path = trust_root_path(repo, trust_root)
    added = add_key(path, key_id, pem, _now(not_before, "--not-before"), comment)
    typer.echo(f"added key {added.id} (valid from {format_time(added.not_before)}) to {path}")


@trust_app.command("retire-key", epilog=TRUST_CODES)
def retire_key_command(
    key_id: str = typer.Option(..., "--id", help="The key to end."),
    not_after: str | None = typer.Option(
        None, "--not-after", help="End of validity, RFC 3339 (default: now)."
    ),
    trust_root: Path | None = TrustRootOption,
    repo: Path = RepoOption,
) -> None:
    """End a key's validity: it signs nothing after, and still verifies what it signed before
    (keep it in the file; removing it makes those releases unverifiable)."""
    from mlgitops.attest.keys import retire_key

    path = trust_root_path(repo, trust_root)
    retired = retire_key(path, key_id, _now(not_after, "--not-after"))
    typer.echo(f"key {retired.id} is valid {retired.period()} in {path}")


def register(app: typer.Typer) -> None:
    from mlgitops import errors as e
    from mlgitops.cli.exitcodes import epilog

    attest_codes = epilog(
        e.ArtifactError,
        e.PackagingError,  # the installed libraries differ from the lock the SBOM lists
        e.GitError,
        e.ImageDigestError,
        e.ReleaseNotPassedError,
        e.AttestationError,  # the statement it built fails the in-toto checks
        e.TrustRootError,
    )
    app.command(name="attest", epilog=attest_codes)(attest_command)
    verify_codes = epilog(
        e.ArtifactError,
        e.GitError,
        e.ReleaseNotPassedError,
        e.AttestationError,
        e.AttestationMissingError,
        e.TrustRootError,
        ok="verified",
    )
    app.command(name="verify", epilog=verify_codes)(verify_command)
    app.add_typer(trust_app, name="trust", epilog=epilog(e.TrustRootError))

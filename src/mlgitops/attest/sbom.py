"""A CycloneDX 1.6 SBOM (JSON) of a release's image: the Python distributions the bento pins
from requirements.lock (name, version, purl, the lock's sha256 of each accepted file) and the
base image's Debian packages.

The image build (src/mlgitops/image/base.py) makes its base with debootstrap and does not record
the installed package list. Given the image's `/var/lib/dpkg/status` (`--dpkg-status`), every
installed package is listed with its version and architecture; without it, the base recipe's
suite and requested packages are listed without versions, marked so (docs/attest.md).

Deterministic: no random serial (a UUID derived from the image and bento), the commit time as
the timestamp, components sorted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from mlgitops.errors import ArtifactError

SBOM_NAMESPACE = uuid.UUID("6f1d2c1e-8f7a-4c55-9d0b-6d6c67697473")
PROPERTY_SOURCE = "mlgitops:source"


@dataclass(frozen=True)
class PythonPin:
    name: str
    version: str
    sha256: tuple[str, ...]


@dataclass(frozen=True)
class DebianPackage:
    name: str
    version: str | None
    architecture: str | None


def lock_hashes(lock_text: str) -> dict[str, tuple[str, tuple[str, ...]]]:
    """{canonical name: (version, sha256s)} of a `uv pip compile --generate-hashes` lock."""
    from packaging.utils import canonicalize_name

    pins: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for raw in lock_text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            current = None if not raw.startswith(" ") else current
            continue
        if not raw.startswith(" ") and "==" in line:
            name, _, rest = line.partition("==")
            version = rest.split()[0].rstrip("\\").split(";")[0].strip()
            current = str(canonicalize_name(name.split("[")[0].strip()))
            pins[current] = (version, [])
        elif current is not None and line.startswith("--hash=sha256:"):
            pins[current][1].append(line.removeprefix("--hash=sha256:").rstrip("\\").strip())
    return {name: (version, tuple(sorted(hashes))) for name, (version, hashes) in pins.items()}


def python_pins(requirements: list[str], lock_text: str) -> list[PythonPin]:
    """The bento's `name==version` pins, with the lock's hashes (bentoml's pin comes from the
    lock too: BentoML writes its own line into the bento)."""
    from packaging.utils import canonicalize_name

    locked = lock_hashes(lock_text)
    pins = []
    for line in [*requirements, "bentoml"]:
        name = str(canonicalize_name(line.partition("==")[0]))
        if name not in locked:
            raise ArtifactError(f"requirements.lock does not pin {name}, which the image ships")
        version, hashes = locked[name]
        pins.append(PythonPin(name, version, hashes))
    return sorted(set(pins), key=lambda p: p.name)


def parse_dpkg_status(text: str) -> list[DebianPackage]:
    """Installed packages of a dpkg status file (stanzas with `Status: install ok installed`)."""
    packages = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        if "Package" in fields and fields.get("Status", "").endswith(" installed"):
            packages.append(
                DebianPackage(fields["Package"], fields.get("Version"), fields.get("Architecture"))
            )
    if not packages:
        raise ArtifactError("the dpkg status file lists no installed package")
    return sorted(set(packages), key=lambda p: (p.name, p.architecture or ""))


def _python_component(pin: PythonPin) -> Component:
    purl = PackageURL(type="pypi", name=pin.name, version=pin.version)
    return Component(
        type=ComponentType.LIBRARY,
        name=pin.name,
        version=pin.version,
        purl=purl,
        bom_ref=purl.to_string(),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=h) for h in pin.sha256],
        properties=[Property(name=PROPERTY_SOURCE, value="requirements.lock")],
    )


def _debian_component(package: DebianPackage, suite: str, source: str) -> Component:
    qualifiers = {"distro": f"debian-{suite}"}
    if package.architecture:
        qualifiers["arch"] = package.architecture
    purl = PackageURL(
        type="deb",
        namespace="debian",
        name=package.name,
        version=package.version,
        qualifiers=qualifiers,
    )
    return Component(
        type=ComponentType.LIBRARY,
        name=package.name,
        version=package.version,
        purl=purl,
        bom_ref=purl.to_string(),
        properties=[Property(name=PROPERTY_SOURCE, value=source)],
    )


def build_sbom(
    *,
    image: str,
    image_digest: str,
    bento_tag: str,
    timestamp: datetime,
    python: list[PythonPin],
    debian: list[DebianPackage],
    debian_suite: str,
    debian_source: str,
) -> str:
    """The SBOM as JSON text, validated against the CycloneDX 1.6 schema before it is returned."""
    repository, _, tag = image.rpartition(":")
    oci = PackageURL(
        type="oci",
        name=repository.rpartition("/")[2],
        version=image_digest,
        qualifiers={"repository_url": repository, "tag": tag},
    )
    subject = Component(
        type=ComponentType.CONTAINER,
        name=repository,
        version=tag,
        purl=oci,
        bom_ref=oci.to_string(),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=image_digest.removeprefix("sha256:"))],
        properties=[Property(name="mlgitops:bento-tag", value=bento_tag)],
    )
    components = [_python_component(p) for p in python] + [
        _debian_component(d, debian_suite, debian_source) for d in debian
    ]
    bom = Bom(
        serial_number=uuid.uuid5(SBOM_NAMESPACE, f"{image}@{image_digest} {bento_tag}"),
        metadata=BomMetaData(timestamp=timestamp, component=subject),
        components=sorted(components, key=lambda c: str(c.bom_ref.value)),
    )
    # The image contains every component (flat: the lock does not say who needs whom).
    bom.register_dependency(subject, bom.components)
    text = JsonV1Dot6(bom).output_as_string(indent=2) + "\n"
    problem = validate_sbom(text)
    if problem is not None:
        raise ArtifactError(f"the SBOM does not validate against CycloneDX 1.6: {problem}")
    return text


def validate_sbom(text: str) -> str | None:
    """None when `text` validates against the strict CycloneDX 1.6 JSON schema, else why not."""
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    return None if error is None else str(error).splitlines()[0][:300]


def read_dpkg_status(path: Path) -> list[DebianPackage]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ArtifactError(f"{path}: cannot read the dpkg status ({error.strerror})") from None
    try:
        return parse_dpkg_status(text)
    except ArtifactError as error:
        raise ArtifactError(f"{path}: {error}") from None

"""Write plots.html, the page `dvc plots show` and `dvc plots diff` fill (.dvc/config:
`[plots] html_template`), with Vega, Vega-Lite and Vega-Embed inlined from their npm packages.

DVC's own page loads those three scripts from a CDN, so offline it is blank. This page is DVC's
(dvc_render.html.PAGE_HTML: `{refresh_tag}` and `{plot_divs}` are the placeholders DVC fills;
`{scripts}`, where DVC puts its CDN tags, is left out on purpose) with the packages' UMD builds
in <script> elements, and the licences of all the code they bundle in a comment at the top.

    python tools/dvc-plots/build.py        # needs npm and the npm registry; rewrites plots.html

The versions are pinned below; the page records each package's npm integrity hash. The page is
committed, so neither users nor tests need the network. Only a deliberate upgrade (change
PACKAGES, run this, commit both) changes it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

# The last releases of the majors DVC's own page loads (vega 5, vega-lite 5, vega-embed 6):
# DVC's plot templates are Vega-Lite 5 specs.
PACKAGES = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}
BUILDS = {
    "vega": "build/vega.min.js",
    "vega-lite": "build/vega-lite.min.js",
    "vega-embed": "build/vega-embed.min.js",
}
OUT = Path(__file__).with_name("plots.html")
# What DVC replaces in the page (dvc_render.html.HTML.embed): the scripts must not contain them.
PLACEHOLDERS = ("{scripts}", "{plot_divs}", "{refresh_tag}")
LICENCE_FILES = ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "license", "LICENSE-MIT")


def install(workdir: Path) -> Path:
    specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
    subprocess.run(
        ["npm", "install", "--no-save", "--ignore-scripts", "--no-audit", "--no-fund", *specs],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return workdir / "node_modules"


def closure(modules: Path) -> list[str]:
    """The three packages and every runtime dependency they pull in (npm's flat layout)."""
    seen: list[str] = []
    todo = list(PACKAGES)
    while todo:
        name = todo.pop()
        if name in seen or not (modules / name / "package.json").is_file():
            continue
        seen.append(name)
        manifest = json.loads((modules / name / "package.json").read_text(encoding="utf-8"))
        todo += sorted(manifest.get("dependencies", {}))
    return sorted(seen)


def licences(modules: Path, names: list[str]) -> str:
    """Each package with its version and licence id, then each distinct licence text once."""
    texts: dict[str, list[str]] = {}
    missing: list[str] = []
    lines = []
    for name in names:
        manifest = json.loads((modules / name / "package.json").read_text(encoding="utf-8"))
        label = f"{name}@{manifest['version']}"
        lines.append(f"  {label}: {manifest.get('license', 'see its package')}")
        found = next(
            (modules / name / f for f in LICENCE_FILES if (modules / name / f).is_file()), None
        )
        if found is None:
            missing.append(label)
            continue
        text = found.read_text(encoding="utf-8").strip()
        texts.setdefault(text, []).append(label)
    out = ["Packages inlined below, or bundled in their builds:", *lines, ""]
    for text, labels in texts.items():
        out += [f"Licence of {', '.join(labels)}:", "", text, ""]
    if missing:
        out += [
            f"{', '.join(missing)} ship no licence file in their npm packages; their licence "
            "ids are listed above. The vega-* ones are the Vega project's (BSD-3-Clause, "
            "University of Washington Interactive Data Lab): the text given above for its other "
            "packages.",
        ]
    return "\n".join(out)


def integrity(modules: Path) -> dict[str, str]:
    lock = json.loads((modules / ".package-lock.json").read_text(encoding="utf-8"))
    return {name: lock["packages"][f"node_modules/{name}"]["integrity"] for name in PACKAGES}


def page(modules: Path) -> str:
    hashes = integrity(modules)
    notice = licences(modules, closure(modules))
    if "-->" in notice or "--!>" in notice:
        raise SystemExit("a licence text would end the HTML comment early")
    scripts = []
    for name, build in BUILDS.items():
        code = (modules / name / build).read_text(encoding="utf-8").strip()
        # No source map to look for: the page is complete in itself.
        code = "\n".join(
            line for line in code.splitlines() if not line.startswith("//# sourceMappingURL=")
        )
        # Inside <script> the HTML parser ends at '</script' and escapes at '<!--': refuse
        # rather than rewrite minified code.
        for forbidden in ("</script", "<!--", *PLACEHOLDERS):
            if forbidden in code.lower():
                raise SystemExit(f"{name}/{build} contains {forbidden!r}")
        scripts.append(f"<script>/* {name}@{PACKAGES[name]} {build} */\n{code}\n</script>")
    header = "\n".join(
        [
            "DVC plots page that needs no network: DVC's page (dvc_render), Vega, Vega-Lite and",
            "Vega-Embed inlined. Written by tools/dvc-plots/build.py; do not edit. From npm:",
            *(f"  {name}@{PACKAGES[name]} {hashes[name]}" for name in PACKAGES),
            "",
            notice,
        ]
    )
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n<!--\n"
        + header
        + '\n-->\n{refresh_tag}\n<meta charset="utf-8">\n<title>DVC Plot</title>\n'
        + "\n".join(scripts)
        + "\n<style>\ntable {\n  border-spacing: 15px;\n}\n</style>\n</head>\n<body>\n"
        + "{plot_divs}\n</body>\n</html>\n"
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="dvc-plots-") as tmp:
        text = page(install(Path(tmp)))
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(text.encode()):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`dvc plots show` and `dvc plots diff` give a page that draws its plots with no network: the
repository's DVC config points them at tools/dvc-plots/plots.html, DVC's page with Vega,
Vega-Lite and Vega-Embed inlined. Headless Chromium renders it with every network request bound
to fail; DVC's own page (scripts from a CDN) stays blank under the same conditions."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dvc_render.vega import VegaRenderer

from tests.support.png import png_pixels
from tests.support.project import REPO_ROOT, run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TEMPLATE = REPO_ROOT / "tools" / "dvc-plots" / "plots.html"
WINDOW = (1000, 1400)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(300),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI installs it)"),
]


def _chromium(tmp_path: Path, page: Path, *args: str) -> str:
    """Chromium on `page` with networking off: names resolve to nothing and every connection
    goes to a closed local port, so a script from the web cannot load."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [
            CHROMIUM,
            *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"),
            *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
            f"--user-data-dir={tmp_path / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=http://127.0.0.1:9",
            "--virtual-time-budget=10000",
            *args,
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


def _ink(tmp_path: Path, page: Path) -> float:
    """Share of the screenshot's pixels that are not (near) white."""
    shot = tmp_path / f"{page.stem}.png"
    _chromium(tmp_path, page, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
    width, height, channels, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == WINDOW
    ink = sum(1 for i in range(0, len(pixels), channels) if min(pixels[i : i + 3]) < 235)
    return ink / (width * height)


def _plot_count(page: Path) -> int:
    return page.read_text(encoding="utf-8").count("vegaEmbed('#")


def test_the_config_names_the_offline_page() -> None:
    config = (REPO_ROOT / ".dvc" / "config").read_text(encoding="utf-8")
    assert re.search(r"^\[plots\]\n\s+html_template = ../tools/dvc-plots/plots.html$", config, re.M)
    assert "/dvc_plots/" in (REPO_ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_dvc_plots_show_draws_every_plot_offline(tmp_path: Path) -> None:
    out = tmp_path / "dvc_plots"
    run(["dvc", "plots", "show", "-o", str(out)], REPO_ROOT)
    page = out / "index.html"
    html = page.read_text(encoding="utf-8")
    # Nothing to fetch: no script, style or image from an address.
    assert not re.search(r"<script[^>]*\ssrc=", html)
    assert not re.search(r"<link\b|@import|url\(\s*['\"]?https?:", html)
    plots = _plot_count(page)
    assert plots == 4  # tuning, ROC, precision-recall, confusion matrix

    # Each plot drawn: vega-embed puts one canvas of marks in its div.
    dom = _chromium(tmp_path, page, "--dump-dom")
    assert dom.count('class="marks"') == plots
    drawn = _ink(tmp_path, page)
    assert drawn > 0.03

    # The check can fail: DVC's own page, scripts from the CDN, stays blank offline.
    vendored = re.compile(r"<script>/\* vega(?:-lite|-embed)?@.*?</script>\n?", re.S)
    blocks = vendored.findall(html)
    assert len(blocks) == 3
    control = tmp_path / "control" / "index.html"
    control.parent.mkdir()
    control.write_text(
        html.replace(blocks[0], VegaRenderer.SCRIPTS).replace(blocks[1], "").replace(blocks[2], "")
    )
    assert 'class="marks"' not in _chromium(tmp_path, control, "--dump-dom")
    assert _ink(tmp_path, control) < drawn / 10


def test_dvc_plots_diff_uses_the_same_page(tmp_path: Path) -> None:
    out = tmp_path / "diff"
    run(["dvc", "plots", "diff", "HEAD", "-o", str(out)], REPO_ROOT)
    html = (out / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\ssrc=", html)
    notice = re.search(r"<!--.*?-->", TEMPLATE.read_text(encoding="utf-8"), re.S)
    assert notice is not None
    assert notice.group(0) in html

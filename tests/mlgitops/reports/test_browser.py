"""The page as a browser shows it: headless Chromium renders it from file:// with no network."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mlgitops.config import Params
from mlgitops.reports.model import load_report
from tests.support.png import png_pixels

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(180),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI installs it)"),
]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"),
            *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_chromium_shows_the_headline_sentence(reported: Params, tmp_path: Path) -> None:
    page = reported.paths.report_html.resolve().as_uri()
    dom = _chromium(tmp_path, "--dump-dom", page).stdout
    match = re.search(r'<p class="headline" id="headline">(.*?)</p>', dom, re.S)
    assert match is not None
    text = html.unescape(re.sub(r"<[^>]+>", "", match.group(1)))
    assert text == load_report(reported.paths.report_json).headline.sentence


def test_the_screenshot_is_not_blank(reported: Params, tmp_path: Path) -> None:
    shot = tmp_path / "page.png"
    page = reported.paths.report_html.resolve().as_uri()
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=800,600", page)
    width, height, channels, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (800, 600)
    # Ink: pixels clearly darker than the white page (text, tables, the headline's box).
    dark = sum(1 for i in range(0, len(pixels), channels) if min(pixels[i : i + 3]) < 160)
    assert dark / (width * height) > 0.01

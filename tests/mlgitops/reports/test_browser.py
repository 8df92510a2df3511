"""The page as a browser shows it: headless Chromium renders it from file:// with no network."""

from __future__ import annotations

import html
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from mlgitops.config import Params
from mlgitops.reports.model import load_report

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


def png_pixels(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, raw pixel rows) of an 8-bit non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0)
    channels = {2: 3, 6: 4, 0: 1, 4: 2}[colour]
    raw, stride = zlib.decompress(idat), width * channels
    out, previous = bytearray(), bytearray(stride)
    for row in range(height):
        kind, line = (
            raw[row * (stride + 1)],
            bytearray(raw[row * (stride + 1) + 1 : (row + 1) * (stride + 1)]),
        )
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, corner = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + pred) & 0xFF
        out += line
        previous = line
    return width, height, channels, bytes(out)


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

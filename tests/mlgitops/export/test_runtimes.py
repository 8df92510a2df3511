"""The generated C and JS scorers, compiled and run on the test rows: the pipeline's decisions."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from mlgitops.export.extract import from_pipeline
from mlgitops.export.ir import CategoricalInput, Trees
from mlgitops.export.quantize import bin_trees
from mlgitops.export.runtimes import C_MAIN, EXAMPLE_ROWS, c_header, example_rows, js_module
from mlgitops.export.tables import columns_of
from tests.support.export_rows import read_rows_csv, scorer_output

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _scorers(trained, directory: Path):
    model = from_pipeline(trained.pipeline)
    binned = bin_trees(model, 64) if isinstance(model.model, Trees) else None
    (directory / "scorer.h").write_text(c_header(model, binned, trained.threshold))
    (directory / "main.c").write_text(C_MAIN)
    (directory / "scorer.mjs").write_text(js_module(model, binned, trained.threshold))
    return model, list(zip(*columns_of(trained.test, model.names), strict=True))


def _csv(names: list[str], rows: list[tuple]) -> str:
    def field(v: object) -> str:
        return "" if v is None else repr(v) if isinstance(v, float) else str(v)

    return "\n".join([",".join(names), *(",".join(field(v) for v in row) for row in rows)]) + "\n"


def _check(trained, scores: np.ndarray, decisions: np.ndarray) -> None:
    reference = trained.reference()
    assert np.max(np.abs(scores - reference)) <= 1e-6
    assert np.array_equal(decisions, reference >= trained.threshold)


@pytest.mark.c
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_the_c_scorer_makes_the_pipelines_decisions(trained, tmp_path) -> None:
    model, rows = _scorers(trained, tmp_path)
    binary = tmp_path / "scorer"
    subprocess.run(
        ["gcc", "-O2", "-std=c99", "-Wall", "-Werror", "-o", binary, tmp_path / "main.c", "-lm"],
        check=True,
    )
    out = subprocess.run(
        [binary], input=_csv(model.names, rows), capture_output=True, text=True, check=True
    ).stdout
    pairs = [line.split(",") for line in out.splitlines()]
    _check(trained, np.array([float(s) for s, _ in pairs]), np.array([d == "1" for _, d in pairs]))


def _compile(directory: Path) -> Path:
    binary = directory / "scorer"
    subprocess.run(
        ["gcc", "-O2", "-std=c99", "-Wall", "-Werror", "-o", binary, directory / "main.c", "-lm"],
        check=True,
    )
    return binary


@pytest.mark.c
@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_rows_csv_scores_as_the_pipeline_in_the_c_scorer(trained, tmp_path) -> None:
    model, _ = _scorers(trained, tmp_path)
    text = example_rows(model, columns_of(trained.test, model.names), trained.reference())
    out = subprocess.run(
        [_compile(tmp_path)], input=text, capture_output=True, text=True, check=True
    ).stdout
    scores, decisions = scorer_output(out)
    categorical = [i.name for i in model.inputs if isinstance(i, CategoricalInput)]
    rows = read_rows_csv(text, categorical)
    expected = trained.pipeline.predict_proba(rows[list(trained.pipeline.feature_names_in_)])[:, 1]
    assert len(rows) == EXAMPLE_ROWS
    assert np.max(np.abs(scores - expected)) <= 1e-6
    assert np.array_equal(decisions, expected >= trained.threshold)
    # Spread over the ranks, lowest first: the lowest and the highest test score, both decisions.
    reference = trained.reference()
    assert np.all(np.diff(expected) >= 0)
    assert expected[0] == pytest.approx(reference.min(), abs=1e-12)
    assert expected[-1] == pytest.approx(reference.max(), abs=1e-12)
    assert decisions.any()
    assert not decisions.all()
    assert rows.isna().any().any()  # missing values travel as empty fields


def test_rows_csv_passes_over_what_plain_csv_cannot_carry(trained) -> None:
    model = from_pipeline(trained.pipeline)
    columns = columns_of(trained.test.head(6), model.names)
    categorical = next(i for i, s in enumerate(model.inputs) if isinstance(s, CategoricalInput))
    numeric = next(i for i, s in enumerate(model.inputs) if not isinstance(s, CategoricalInput))
    columns[categorical][0] = "a,b"  # would shift every later field
    columns[categorical][1] = "line\nbreak"
    columns[categorical][2] = ""  # the scorers read an empty field as missing
    columns[numeric][3] = float("inf")
    scores = np.linspace(0.1, 0.6, 6)
    text = example_rows(model, columns, scores, count=4)
    lines = text.splitlines()
    assert lines[0] == ",".join(model.names)
    assert len(lines) == 1 + 2  # rows 4 and 5 only
    assert text == example_rows(model, columns, scores, count=4)  # same input, same bytes
    # A header main.c cannot split is an error, not a file the example cannot be read from.
    odd = replace(model, inputs=(*model.inputs[:-1], replace(model.inputs[-1], name="x,y")))
    with pytest.raises(ValueError, match="'x,y' cannot be a column"):
        example_rows(odd, columns, scores)


def _js_rows(model, rows) -> str:
    return json.dumps([dict(zip(model.names, row, strict=True)) for row in rows])


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_the_js_scorer_makes_the_pipelines_decisions_in_node(trained, tmp_path) -> None:
    model, rows = _scorers(trained, tmp_path)
    (tmp_path / "rows.json").write_text(_js_rows(model, rows))
    script = (
        "import {score, decide} from './scorer.mjs'; import fs from 'node:fs';"
        "const s = JSON.parse(fs.readFileSync('rows.json')).map(score);"
        "console.log(JSON.stringify({s, d: s.map(decide)}));"
    )
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out)
    _check(trained, np.array(result["s"]), np.array(result["d"]))


@pytest.mark.browser
@pytest.mark.timeout(120)
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (CI installs it)")
def test_the_js_scorer_makes_the_pipelines_decisions_in_chromium(trained, tmp_path) -> None:
    model, rows = _scorers(trained, tmp_path)
    # Inlined so the page works from file:// (Chromium blocks module imports there).
    module = (tmp_path / "scorer.mjs").read_text().replace("export ", "")
    page = (
        "<!doctype html><html><body><pre id='out'>pending</pre><script>"
        f"{module}\nconst rows = {_js_rows(model, rows)};\n"
        "const s = rows.map(score);"
        "document.getElementById('out').textContent = JSON.stringify({s, d: s.map(decide)});"
        "</script></body></html>"
    )
    (tmp_path / "page.html").write_text(page)
    out = subprocess.run(
        [
            CHROMIUM,
            *("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"),
            *("--disable-background-networking", "--disable-component-update", "--disable-sync"),
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            (tmp_path / "page.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    ).stdout
    text = out.split('<pre id="out">', 1)[1].split("</pre>", 1)[0]
    result = json.loads(text)
    _check(trained, np.array(result["s"]), np.array(result["d"]))

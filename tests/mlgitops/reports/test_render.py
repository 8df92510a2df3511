"""The page against its twin: every number on it is one of the twin's, no address, no script."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from mlgitops.config import Params
from mlgitops.records import load_metrics
from mlgitops.reports.model import load_report
from mlgitops.reports.render import FORMATS, Page, render

# Digits the page's own prose may hold (everything else comes from the twin).
ALLOWED = ("95%", "1,000")


class _Reader(HTMLParser):
    """Collects the <data> elements and the text outside them, <style>, <title> and <svg>."""

    def __init__(self) -> None:
        super().__init__()
        self.data: list[tuple[dict[str, str], str]] = []
        self.stray: list[str] = []
        self.headline: list[str] = []
        self._skip = 0
        self._in_data: dict[str, str] | None = None
        self._text = ""
        self._headline_depth = 0

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("style", "title", "svg"):
            self._skip += 1
        if tag == "data":
            self._in_data, self._text = attributes, ""
        if tag == "p" and attributes.get("id") == "headline":
            self._headline_depth = 1

    def handle_endtag(self, tag):
        if tag in ("style", "title", "svg"):
            self._skip -= 1
        if tag == "data" and self._in_data is not None:
            self.data.append((self._in_data, self._text))
            self._in_data = None
        if tag == "p" and self._headline_depth:
            self._headline_depth = 0

    def handle_data(self, data):
        if self._headline_depth:
            self.headline.append(data)
        if self._in_data is not None:
            self._text += data
        elif not self._skip:
            self.stray.append(data)


def _read(params: Params) -> tuple[_Reader, dict]:
    reader = _Reader()
    reader.feed(params.paths.report_html.read_text(encoding="utf-8"))
    return reader, json.loads(params.paths.report_json.read_text(encoding="utf-8"))


def test_every_number_on_the_page_is_the_twins(reported: Params) -> None:
    reader, twin = _read(reported)
    page = Page(twin)
    assert len(reader.data) > 200
    for attributes, text in reader.data:
        value = page.get(attributes["data-k"])
        fmt = attributes["data-f"]
        shown = value if fmt == "text" else json.loads(attributes["value"])
        assert shown == value, attributes
        assert text == FORMATS[fmt](value), attributes
    stray = "".join(reader.stray)
    for allowed in ALLOWED:
        stray = stray.replace(allowed, "")
    assert re.findall(r".{0,30}\d.{0,30}", stray) == []


def test_the_headline_is_the_twins_sentence_and_evaluates_figures(reported: Params) -> None:
    reader, twin = _read(reported)
    assert "".join(reader.headline) == twin["headline"]["sentence"]
    metrics = load_metrics(reported.paths.metrics)
    headline = twin["headline"]
    assert headline["threshold"] == metrics.threshold
    assert headline["fnr"]["value"] == round(metrics.fn / (metrics.fn + metrics.tp), 6)
    assert headline["fpr"]["value"] == round(metrics.fp / (metrics.fp + metrics.tn), 6)
    assert headline["fnr"]["value"] == metrics.fnr
    assert headline["fpr"]["value"] == metrics.fpr
    released = twin["tradeoffs"]["points"]["released"]
    assert released["threshold"] == metrics.threshold
    assert released["fnr"] == headline["fnr"]
    rows = {row["name"]: row["current"] for row in twin["changes"]["rows"]}
    assert rows["roc_auc"]["value"] == metrics.roc_auc
    assert rows["recall"]["value"] == metrics.recall
    splits = twin["data"]["splits"]
    assert splits["test"]["rows"] == metrics.n_test
    assert splits["test"]["positives"] == metrics.tp + metrics.fn


def test_the_page_is_one_offline_file_under_budget(reported: Params) -> None:
    html = reported.paths.report_html.read_text(encoding="utf-8")
    assert "http://" not in html
    assert "https://" not in html
    assert "<script" not in html
    assert "src=" not in html
    assert "<link" not in html
    assert len(html.encode()) < 1_000_000
    assert html.count("<svg") == 2


def test_render_is_a_pure_function_of_the_twin(reported: Params) -> None:
    report = load_report(reported.paths.report_json)
    assert render(report) == reported.paths.report_html.read_text(encoding="utf-8")


def test_a_rate_shown_with_a_decimal_is_marked_up_like_the_others(reported: Params) -> None:
    from mlgitops.config import ReportWords
    from mlgitops.reports import analysis
    from mlgitops.reports.model import Estimate

    report = load_report(reported.paths.report_json)
    # Whole percents would read "11% (10–11%)": the sentence and the page use one decimal.
    fpr = Estimate(value=0.107095, low=0.101116, high=0.113383)
    values = {
        key: getattr(report.headline, key)
        for key in ("fnr", "false_alarms_per_day", "missed_per_day", "caught_per_day")
    }
    values["fpr"] = fpr
    words = ReportWords()
    sentence = analysis.sentence(analysis.headline_parts(words.model, values, words))
    headline = report.headline.model_copy(update={"fpr": fpr, "sentence": sentence})
    page = render(report.model_copy(update={"headline": headline}))
    reader = _Reader()
    reader.feed(page)
    assert "".join(reader.headline) == sentence
    assert "a 10.7% (10.1–11.3%) false positive rate" in sentence


# --- the small things a stakeholder noticed (issue 18) ------------------------------------------


def _with_previous(report, rows):
    changes = report.changes.model_copy(
        update={
            "previous_commit": "0" * 40,
            "previous_bento_tag": "fraud-detector:older",
            "rows": rows,
        }
    )
    return report.model_copy(update={"changes": changes})


def test_counts_per_1000_have_one_decimal_like_the_rest_of_the_page(reported: Params) -> None:
    from mlgitops.reports import analysis

    report = load_report(reported.paths.report_json)
    metrics = json.loads(reported.paths.metrics.read_text())
    page = render(_with_previous(report, analysis.compare(metrics, metrics)))
    for name in ("alerts_per_1000", "missed_frauds_per_1000"):
        value = metrics[name]
        assert f'data-f="num1">{value:,.1f}</data>' in page
        assert f">{value:.3f}<" not in page


def test_a_point_at_the_released_threshold_says_so(reported: Params) -> None:
    report = load_report(reported.paths.report_json)
    points = report.tradeoffs.points
    released = points[report.tradeoffs.released].threshold
    # B, the lowest cost, is the released threshold with the min_expected_cost policy.
    assert points["cost_minimum"].threshold == released
    same = [
        "ABCDEFGH"[i]
        for i, (key, point) in enumerate(points.items())
        if key != "released" and point.threshold == released
    ]
    assert same[0] == "B"
    said = "B" if len(same) == 1 else ", ".join(same[:-1]) + " and " + same[-1]
    verb = "is" if len(same) == 1 else "are"
    assert f"<p>{said} {verb} the released threshold.</p>" in render(report)
    moved = {
        key: point.model_copy(update={"threshold": released / 2})
        if key != "released" and point.threshold == released
        else point
        for key, point in points.items()
    }
    other = report.model_copy(
        update={"tradeoffs": report.tradeoffs.model_copy(update={"points": moved})}
    )
    assert "the released threshold.</p>" not in render(other)

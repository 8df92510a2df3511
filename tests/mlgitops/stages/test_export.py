from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlgitops.errors import ExportError
from mlgitops.export import build, onnx_graph, quantize
from mlgitops.stages import export
from tests.mlgitops.export.conftest import trained  # noqa: F401  (the session fixture)


def _with_export(params, **changes):
    return params.model_copy(update={"export": params.export.model_copy(update=changes)})


def test_the_stage_writes_every_artifact_and_a_passing_ledger(trained) -> None:  # noqa: F811
    params = trained.params
    export.run(params)
    files = sorted(p.name for p in Path(params.paths.export_dir).iterdir())
    metrics = json.loads(Path(params.paths.export_metrics).read_text())
    trees = params.train.model != "logistic_regression"
    expected = {"main.c", "model.onnx", "rows.csv", "scorer.h", "scorer.mjs"}
    expected |= {"model.pruned.onnx"} if trees else set()
    assert expected <= set(files)
    assert any(f.startswith("model.q") for f in files)
    assert metrics["onnx"]["decisions_flipped"] == 0
    assert metrics["onnx"]["max_abs_delta_score"] <= 1e-6
    assert metrics["quantized"]["flipped_fraction"] <= 0.001
    assert (metrics["pruned"] is not None) == trees


def test_same_inputs_same_bytes(trained) -> None:  # noqa: F811
    params = trained.params
    export.run(params)
    first = {p.name: p.read_bytes() for p in Path(params.paths.export_dir).iterdir()}
    metrics = Path(params.paths.export_metrics).read_bytes()
    export.run(params)
    again = {p.name: p.read_bytes() for p in Path(params.paths.export_dir).iterdir()}
    assert first == again
    assert Path(params.paths.export_metrics).read_bytes() == metrics


def test_a_failed_parity_gate_is_one_line(trained, monkeypatch) -> None:  # noqa: F811
    real = onnx_graph.run

    def off_by_a_bit(*args):
        scores, decisions = real(*args)
        return scores + 1e-5, decisions

    monkeypatch.setattr(onnx_graph, "run", off_by_a_bit)
    with pytest.raises(ExportError, match=r"^export: ONNX parity failed: max \|Δ score\|") as info:
        export.run(trained.params)
    assert "\n" not in str(info.value)


def test_a_failed_quantization_gate_names_both_widths(trained, monkeypatch) -> None:  # noqa: F811
    real = build.ledger

    def every_decision_flips(*args):
        return real(*args).model_copy(update={"flipped_fraction": 1.0})

    monkeypatch.setattr(build, "ledger", every_decision_flips)
    with pytest.raises(
        ExportError, match=r"quantized model fails export.quantize \(int8: .*int16: "
    ):
        export.run(trained.params)


def test_a_quantized_file_that_does_not_read_back_fails_the_stage(trained, monkeypatch) -> None:  # noqa: F811
    real = quantize.pack
    monkeypatch.setattr(quantize, "pack", lambda *args: real(*args)[:-1])
    with pytest.raises(
        ExportError, match=r"^export: model\.q8\.bin does not read back: model\.q8\.bin: truncated"
    ) as info:
        export.run(trained.params)
    assert "\n" not in str(info.value)


def test_a_file_scoring_differently_from_the_ledger_fails_the_stage(trained, monkeypatch) -> None:  # noqa: F811
    real = quantize.QuantizedModel.score
    monkeypatch.setattr(
        quantize.QuantizedModel, "score", lambda self, columns: real(self, columns) + 1e-15
    )
    with pytest.raises(
        ExportError, match=r"^export: model\.q8\.bin read back scores \d+ of \d+ test rows"
    ) as info:
        export.run(trained.params)
    assert "\n" not in str(info.value)

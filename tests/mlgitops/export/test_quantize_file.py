"""The quantized file (`model.qN.bin`), read back: it scores raw rows as the export stage gated."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mlgitops.errors import ArtifactError
from mlgitops.export import quantize
from mlgitops.export.extract import from_pipeline
from mlgitops.export.ir import LEAF, ExportModel, NumericInput, Trees, encode, score_encoded
from mlgitops.export.ledger import decisions
from mlgitops.export.tables import columns_of
from mlgitops.stages import export


def _in_memory(
    trained, bits: int, columns: list[list[object]] | None = None
) -> tuple[bytes, np.ndarray, list[list[object]]]:
    """The file and the in-memory quantized scores of `columns` (default: the fixture's rows,
    edge rows with unseen and missing values included)."""
    model = from_pipeline(trained.pipeline)
    columns = columns_of(trained.test, model.names) if columns is None else columns
    if isinstance(model.model, Trees):
        binned = quantize.bin_trees(model, bits)
        scores = quantize.score_binned(model, binned, encode(model.inputs, columns))
        return quantize.pack_trees(model, binned), scores, columns
    qmodel, q, scale = quantize.quantize_linear(trained.pipeline, bits)
    scores = score_encoded(qmodel, encode(qmodel.inputs, columns))
    return quantize.pack_linear(qmodel, q, scale, bits), scores, columns


@pytest.mark.parametrize("bits", [8, 16])
def test_the_file_scores_raw_rows_bit_for_bit_as_in_memory(trained, bits) -> None:
    blob, scores, columns = _in_memory(trained, bits)
    loaded = quantize.load_quantized(blob)
    assert loaded.bits == bits
    assert loaded.model.model_type == trained.params.train.model
    assert np.array_equal(loaded.score(columns), scores)
    # Records as a client sends them: NaN or None for missing, unseen strings, absent keys.
    records = [dict(zip(loaded.names, row, strict=True)) for row in zip(*columns, strict=True)]
    for record in records[-4:]:
        record.pop(loaded.names[0])
    first = [*columns[0][:-4], None, None, None, None]
    _, absent, _ = _in_memory(trained, bits, [first, *columns[1:]])
    assert np.array_equal(loaded.score_records(records), absent)
    assert not np.array_equal(absent, scores)  # the absent keys made a difference


def test_unseen_and_missing_values_score_as_the_encoder_says(trained) -> None:
    blob, _, columns = _in_memory(trained, 8)
    loaded = quantize.load_quantized(blob)
    row = {name: column[0] for name, column in zip(loaded.names, columns, strict=True)}
    odd = []
    for spec in loaded.model.inputs:
        if isinstance(spec, NumericInput):
            odd += [{**row, spec.name: None}, {**row, spec.name: math.nan}]
        else:
            odd += [{**row, spec.name: "never-seen"}, {**row, spec.name: None}]
    got = loaded.score_records(odd)
    # NaN and None are one "missing"; an unseen category is the encoder's "unknown" value.
    assert np.all(np.isfinite(got))
    numeric = [j for j, s in enumerate(loaded.model.inputs) if isinstance(s, NumericInput)]
    assert all(got[2 * j] == got[2 * j + 1] for j in numeric)


def test_the_stage_ledger_counts_the_files_flips(trained) -> None:
    import pandas as pd

    params = trained.params
    export.run(params)
    ledger = json.loads(Path(params.paths.export_metrics).read_text())["quantized"]
    path = Path(params.paths.export_dir) / f"model.q{ledger['bits']}.bin"
    loaded = quantize.read_quantized(path)
    test = pd.read_parquet(params.paths.test)
    reference = trained.pipeline.predict_proba(test[list(trained.pipeline.feature_names_in_)])[:, 1]
    scores = loaded.score(columns_of(test, loaded.names))
    flips = int(np.sum(decisions(scores, trained.threshold) != (reference >= trained.threshold)))
    assert flips == ledger["decisions_flipped"]
    assert np.max(np.abs(scores - reference)) == pytest.approx(ledger["max_abs_delta_p"], abs=1e-12)


def test_same_model_same_bytes_and_compact_children(trained) -> None:
    first, _, _ = _in_memory(trained, 8)
    again, _, _ = _in_memory(trained, 8)
    assert first == again
    header, arrays = quantize._unpack(first, "x")
    if header["format"] == "trees":
        assert not {"left", "right"} & set(arrays)
        assert arrays["right_offset"].dtype.itemsize <= 2  # u8/u16, not global u32 ids
        splits = int(np.sum(arrays["flags"] & 1))
        assert [len(arrays[k]) for k in ("feature", "split", "right_offset")] == [splits] * 3


def test_trees_not_in_preorder_are_reordered_losslessly() -> None:
    # Node 0 splits to 2 (a leaf, left) and 1 (a split into leaves 3 and 4): left != node + 1.
    trees = Trees(
        feature=np.array([0, 0, LEAF, LEAF, LEAF], np.int32),
        threshold=np.array([1.5, 3.0, 0, 0, 0]),
        categorical=np.zeros(5, bool),
        cat_sets=(frozenset(),) * 5,
        missing_left=np.array([True, False, False, False, False]),
        left=np.array([2, 3, LEAF, LEAF, LEAF], np.int32),
        right=np.array([1, 4, LEAF, LEAF, LEAF], np.int32),
        value=np.array([0, 0, -1.0, 0.25, 2.0]),
        roots=np.array([0], np.int32),
        aggregate="logit",
        base=0.5,
    )
    model = ExportModel("hist_gradient_boosting", (NumericInput("x", math.nan),), trees)
    binned = quantize.bin_trees(model, 8)
    x = [[None, 1.0, 1.5, 2.0, 3.0, 3.5, 100.0]]
    expected = quantize.score_binned(model, binned, encode(model.inputs, x))
    loaded = quantize.load_quantized(quantize.pack_trees(model, binned))
    assert np.array_equal(loaded.score(x), expected)
    assert len(set(expected.tolist())) == 3  # every leaf is reached
    stored = loaded.binned.trees  # type: ignore[union-attr]
    assert stored.left.tolist() == [1, LEAF, 3, LEAF, LEAF]  # pre-order: left is node + 1
    assert stored.right.tolist() == [2, LEAF, 4, LEAF, LEAF]


def _repack(blob: bytes, change) -> bytes:
    header, arrays = quantize._unpack(blob, "x")
    arrays = {k: np.array(v) for k, v in arrays.items()}
    header.pop("arrays")
    change(header, arrays)
    return quantize.pack(arrays, header)


def _bad_right(header, arrays) -> None:
    arrays["right_offset"][0] = 0  # the first split's right child is itself


def _bad_categories(header, arrays) -> None:
    spec = next(s for s in header["inputs"] if s["kind"] == "categorical")
    spec["categories"] = spec["categories"][:-1]


def _short_leaves(header, arrays) -> None:
    arrays["leaves"] = arrays["leaves"][:-1]


def _short_terms(header, arrays) -> None:
    arrays["numeric_terms"] = arrays["numeric_terms"][:-1]


def test_corrupt_files_raise_one_line_artifact_errors(trained) -> None:
    blob, _, _ = _in_memory(trained, 8)
    header_end = 10 + int.from_bytes(blob[6:10], "little")
    trees = json.loads(blob[10:header_end])["format"] == "trees"
    structural = [_bad_categories, *([_bad_right, _short_leaves] if trees else [_short_terms])]
    cases = {
        "wrong magic": (b"PK\x03\x04" + blob[4:], "not an MLGQ2 file"),
        "version 1": (b"MLGQ1\n" + blob[6:], "not an MLGQ2 file"),
        "empty": (b"", "not an MLGQ2 file"),
        "cut in length": (blob[:8], "truncated before the header length"),
        "cut in header": (blob[: header_end - 5], "truncated in the header"),
        "cut in arrays": (blob[: header_end + (len(blob) - header_end) // 2], "truncated in"),
        "last byte gone": (blob[:-1], "truncated in array"),
        "extra byte": (blob + b"\0", "1 bytes after the last array"),
        "header not JSON": (blob[:10] + b"x" + blob[11:], "header is not JSON"),
        **{f.__name__: (_repack(blob, f), "") for f in structural},
    }
    for name, (data, message) in cases.items():
        with pytest.raises(ArtifactError) as info:
            quantize.load_quantized(data, "model.q8.bin")
        text = str(info.value)
        assert text.startswith("model.q8.bin: "), name
        assert "\n" not in text, name
        assert message in text, (name, text)


def test_a_missing_file_is_an_artifact_error(tmp_path) -> None:
    with pytest.raises(ArtifactError, match=r"model\.q8\.bin: cannot read"):
        quantize.read_quantized(tmp_path / "model.q8.bin")


def test_an_empty_array_sharing_its_offset_reads_back() -> None:
    # A one-split ensemble has no categorical split: its `bitsets` array is empty and starts
    # where the next array does; the index lists arrays by name, not by where they are.
    arrays = {"x": np.arange(3.0), "z": np.zeros(0), "y": np.ones(2)}
    data = quantize.pack(arrays, {"format": "test"})
    header, read = quantize._unpack(data, "m.bin")
    assert header["format"] == "test"
    assert {name: a.tolist() for name, a in read.items()} == {
        name: a.tolist() for name, a in arrays.items()
    }


def test_a_one_split_boosting_model_exports(tmp_path) -> None:
    from mlgitops.stages import evaluate, gate, rules, score_reference, split, train, validate
    from tests.support.project import params_in, write_small_dataset

    # max_iter=1, two leaves: what a degraded challenger looks like (the retrain tests train one).
    base = params_in(tmp_path)
    hgb = base.train.hist_gradient_boosting.model_copy(update={"max_iter": 1, "max_leaf_nodes": 2})
    params = base.model_copy(
        update={"train": base.train.model_copy(update={"hist_gradient_boosting": hgb})}
    )
    write_small_dataset(params.data.path)
    for stage in (validate, split, train, evaluate, score_reference, gate, rules, export):
        stage.run(params)
    written = sorted(p.name for p in params.paths.export_dir.iterdir())
    assert "model.q8.bin" in written or "model.q16.bin" in written

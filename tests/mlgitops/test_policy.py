"""The gate policy of a revision: which keys it holds, and which changes are flagged."""

from __future__ import annotations

import copy

import pytest

from mlgitops.errors import ConfigError
from mlgitops.policy import changed_keys, policy_of
from tests.support.project import raw_params

COMMIT = "a" * 40


def _with(raw: dict, **dotted) -> dict:
    raw = copy.deepcopy(raw)
    for key, value in dotted.items():
        section, name = key.split("__")
        raw.setdefault(section, {})[name] = value
    return raw


def test_the_policy_holds_the_gate_the_costs_and_what_defines_the_test_rows():
    flat = policy_of(raw_params(), COMMIT).flat()
    assert flat["gate.auc_margin"] == 0.01
    assert flat["threshold.false_negative_cost"] == 120.0
    assert {k for k in flat if k.startswith("split.")} == {
        "split.test_size",
        "split.validation_size",
        "split.seed",
    }
    assert flat["data.time_column"] == "timestamp"
    assert not any(k.startswith(("train.", "tune.")) for k in flat)


@pytest.mark.parametrize(
    ("change", "keys"),
    [
        ({"gate__auc_margin": 0.99, "gate__cost_margin_per_1000": 1e6},
         ("gate.auc_margin", "gate.cost_margin_per_1000")),
        ({"gate__base": None}, ("gate.base",)),
        ({"threshold__false_negative_cost": 1.0}, ("threshold.false_negative_cost",)),
        ({"split__seed": 7}, ("split.seed",)),
        ({"data__time_column": None}, ("data.time_column",)),
        # Not policy: the model's own params, and the split's profile settings.
        ({"train__min_category_frequency": 1000000, "tune__enabled": False}, ()),
        ({"split__numeric_bins": 20}, ()),
    ],
)  # fmt: skip
def test_changed_keys_name_exactly_the_policy_keys_a_head_edits(change, keys):
    base = policy_of(raw_params(), COMMIT)
    head = policy_of(_with(raw_params(), **change), "b" * 40)
    assert changed_keys(base, head) == keys
    assert (base.sha256 == head.sha256) == (keys == ())


def test_a_default_written_out_is_no_change():
    raw = raw_params()
    without = copy.deepcopy(raw)
    del without["gate"]["segment_alpha"]  # the default, 0.01, as params.yaml writes it
    assert changed_keys(policy_of(raw, COMMIT), policy_of(without, COMMIT)) == ()


def test_a_new_split_definition_is_told_apart_from_a_new_margin():
    base = policy_of(raw_params(), COMMIT)
    margin = policy_of(_with(raw_params(), gate__auc_margin=0.5), COMMIT)
    split = policy_of(_with(raw_params(), split__test_size=0.05), COMMIT)
    assert not base.defines_other_test_rows(margin)
    assert base.defines_other_test_rows(split)


def test_an_invalid_policy_names_the_commit_and_key():
    with pytest.raises(ConfigError, match=r"^aaaaaaaaaaaa:params.yaml: gate.auc_margin: "):
        policy_of(_with(raw_params(), gate__auc_margin=2.0), COMMIT)

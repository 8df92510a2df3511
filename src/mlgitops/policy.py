"""The gate's policy at a revision: what decides whether a change is released.

A change must not set its own bar. `mlgitops report pr` therefore judges the head's release under
the policy of the base revision (the champion's commit), never the head's, and names every key
the head changed. The policy is:

- `gate.*`: margins, alpha, bootstrap, seed, guardrail segments (and `gate.base`, which turns the
  comparison off when null);
- `threshold.*`: the threshold policy and the costs the gate's cost per 1,000 is priced in;
- what defines the test rows: `split.test_size`, `split.validation_size`, `split.seed`, and
  `data.target`, `data.positive_class`, `data.time_column` (split by time or stratified).

Each section is validated with its params.yaml model (mlgitops.config), so an absent key and
its default compare equal. docs/ci/CODEOWNERS protects the same keys' file and the judge code.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from mlgitops.config import GateConfig, SplitConfig, ThresholdConfig
from mlgitops.errors import ConfigError, validation_line

# params.yaml keys, per section, that define the test rows (the split's other keys only shape
# the reference profile).
SPLIT_KEYS = ("test_size", "validation_size", "seed")
DATA_KEYS = ("target", "positive_class", "time_column")


def section(raw: dict[str, Any], commit: str, name: str, model: type[BaseModel]) -> Any:
    """params.yaml's section `name` at `commit`, validated by `model` (defaults filled in)."""
    block = raw.get(name) or {}
    if not isinstance(block, dict):
        raise ConfigError(f"{commit[:12]}:params.yaml: {name}: expected a mapping")
    try:
        return model.model_validate(block)
    except ValidationError as error:
        raise ConfigError(f"{commit[:12]}:params.yaml: {name}.{validation_line(error)}") from None


@dataclass(frozen=True)
class GatePolicy:
    """The policy of one revision, validated."""

    commit: str
    gate: GateConfig
    costs: ThresholdConfig
    split: SplitConfig
    data: dict[str, Any]

    def flat(self) -> dict[str, Any]:
        """Every policy key as `section.key` -> value (JSON-typed), sorted."""
        out: dict[str, Any] = {}
        for name, model in (("gate", self.gate), ("threshold", self.costs)):
            for key, value in model.model_dump(mode="json").items():
                out[f"{name}.{key}"] = value
        split = self.split.model_dump(mode="json")
        out.update({f"split.{key}": split[key] for key in SPLIT_KEYS})
        out.update({f"data.{key}": self.data.get(key) for key in DATA_KEYS})
        return dict(sorted(out.items()))

    @property
    def sha256(self) -> str:
        """The hash of the policy (canonical JSON of `flat`): what a verdict was judged under."""
        text = json.dumps(self.flat(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    def defines_other_test_rows(self, other: GatePolicy) -> bool:
        keys = [f"split.{k}" for k in SPLIT_KEYS] + [f"data.{k}" for k in DATA_KEYS]
        mine, theirs = self.flat(), other.flat()
        return any(mine[key] != theirs[key] for key in keys)


def policy_of(raw: dict[str, Any], commit: str) -> GatePolicy:
    """The gate policy of params.yaml `raw` (as read at `commit`)."""
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{commit[:12]}:params.yaml: data: expected a mapping")
    return GatePolicy(
        commit=commit,
        gate=section(raw, commit, "gate", GateConfig),
        costs=section(raw, commit, "threshold", ThresholdConfig),
        split=section(raw, commit, "split", SplitConfig),
        data={key: data.get(key) for key in DATA_KEYS},
    )


def changed_keys(base: GatePolicy, head: GatePolicy) -> tuple[str, ...]:
    """The policy keys whose values differ between base and head, sorted."""
    old, new = base.flat(), head.flat()
    return tuple(key for key in sorted(old.keys() | new.keys()) if old.get(key) != new.get(key))

"""Stage `gate`: promote only a model that is not worse than the one it replaces.

The champion is the model of the release committed at `gate.base` (default HEAD, the release
this change would replace); the challenger is this tree's model; the paired comparison, its
verdict and its Markdown are mlgitops.gate's. `gate.base: null` turns the gate off (a PASS with
that reason). The verdict is written, whatever it is, to reports/gate.json and reports/gate.md;
the release stages (rules, package, report) act only on a PASS and otherwise keep their outputs
(src/mlgitops/verdict.py).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlgitops.config import Params
from mlgitops.gate.compare import against_base, unopposed
from mlgitops.gate.contender import workspace_challenger
from mlgitops.gate.markdown import markdown
from mlgitops.git import repo_root, resolve_commit
from mlgitops.io import atomic_write_text
from mlgitops.records import GateHeadline, save_headline, save_record
from mlgitops.schema import load_schema


def run(params: Params) -> str:
    test = pd.read_parquet(params.paths.test)
    schema = load_schema(params.paths.schema_file)
    challenger = workspace_challenger(params)
    base = params.gate.base
    if base is None:
        report = unopposed(
            "gate off (gate.base: null)", None, test, challenger, params.gate, params.threshold
        )
    else:
        repo = repo_root(Path.cwd())
        commit = resolve_commit(repo, base)
        report, _ = against_base(
            repo, base, commit, test, schema.features, challenger, params.gate, params.threshold
        )
    save_record(report, params.paths.gate_metrics)
    save_headline(GateHeadline.of(report), params.paths.headline_gate)
    atomic_write_text(params.paths.gate_report, markdown(report))
    return f"{report.verdict}: {report.reason} ({params.paths.gate_report})"

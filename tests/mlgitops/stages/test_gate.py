"""Stage `gate` end to end with the gate off, and the package stage's refusal of anything but
PASS (the verdict's statistics: tests/mlgitops/gate/test_compare.py)."""

from __future__ import annotations

import pytest

from mlgitops.config import GateConfig
from mlgitops.errors import GateFailedError, GateInconclusiveError
from mlgitops.io import file_sha256
from mlgitops.records import GateReport, load_gate_report, save_record
from mlgitops.release import write_release
from mlgitops.stages import evaluate, gate, package, split, train, validate
from tests.support.reports import fake_release


def _pipeline_up_to_gate(params):
    for stage in (validate, split, train, evaluate, gate):
        stage.run(params)


def test_gate_off_passes_and_package_releases(params):
    params = params.model_copy(update={"gate": GateConfig(base=None)})
    _pipeline_up_to_gate(params)
    report = load_gate_report(params.paths.gate_metrics)
    assert report.verdict == "PASS"
    assert report.reason == "gate off (gate.base: null)"
    assert (
        (params.paths.gate_report).read_text().startswith("## Champion / challenger gate: **PASS")
    )


def _judged(params, verdict: str) -> None:
    """This tree's gate record with `verdict` (the package stage's input; the verdicts
    themselves: tests/mlgitops/gate/test_compare.py)."""
    passed = load_gate_report(params.paths.gate_metrics)
    save_record(
        GateReport(**{**passed.model_dump(), "verdict": verdict, "reason": "made up"}),
        params.paths.gate_metrics,
    )


@pytest.mark.parametrize("verdict", ["FAIL", "INCONCLUSIVE"])
def test_package_on_anything_but_pass_keeps_the_release_and_succeeds(params, verdict):
    params = params.model_copy(update={"gate": GateConfig(base=None)})
    _pipeline_up_to_gate(params)
    champion = fake_release(params)
    write_release(champion, params.paths.release, params.paths.k8s_release_patch)
    params.paths.bento_archive.parent.mkdir(parents=True)
    params.paths.bento_archive.write_bytes(b"the champion's bento")
    outputs = (params.paths.release, params.paths.k8s_release_patch, params.paths.bento_archive)
    before = {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in outputs}
    _judged(params, verdict)
    line = package.run(params)
    assert line == (
        f"gate verdict {verdict} (see {params.paths.gate_report}): release not changed; "
        f"{params.paths.release} and {params.paths.k8s_release_patch} still pin "
        f"{champion.bento_tag}, {params.paths.bento_archive} is its bento"
    )
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in outputs} == before


@pytest.mark.parametrize(
    ("verdict", "error"), [("FAIL", GateFailedError), ("INCONCLUSIVE", GateInconclusiveError)]
)
def test_package_without_a_release_to_keep_refuses_and_writes_nothing(params, verdict, error):
    params = params.model_copy(update={"gate": GateConfig(base=None)})
    _pipeline_up_to_gate(params)
    _judged(params, verdict)
    with pytest.raises(error, match=f"^gate verdict {verdict} .*made up; no release to keep"):
        package.run(params)
    assert not params.paths.release.exists()
    assert not params.paths.bento_archive.exists()
    assert error.exit_code in {17, 18}


def test_package_refuses_a_verdict_on_another_model(params):
    from mlgitops.errors import ArtifactError

    params = params.model_copy(update={"gate": GateConfig(base=None)})
    _pipeline_up_to_gate(params)
    passed = load_gate_report(params.paths.gate_metrics)
    save_record(
        GateReport(**{**passed.model_dump(), "challenger_model_hash": "sha256:" + "0" * 64}),
        params.paths.gate_metrics,
    )
    assert file_sha256(params.paths.model)
    with pytest.raises(ArtifactError, match="judged model sha256:0000"):
        package.run(params)

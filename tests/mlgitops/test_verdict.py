"""Whether a model is released: this tree's verdict (the release stages) and a commit's (deploy,
`report pr`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlgitops.errors import (
    ArtifactError,
    GateFailedError,
    GateInconclusiveError,
    ReleaseNotPassedError,
)
from mlgitops.io import file_sha256
from mlgitops.records import GateReport, load_gate_report, save_record
from mlgitops.release import ReleaseRecord
from mlgitops.stages import evaluate, gate, rules, score_reference, split, train, validate
from mlgitops.verdict import (
    committed_verdict,
    judged_model_hash,
    refusal,
    require_released,
    tree_verdict,
)
from tests.mlgitops.deploy.helpers import release_for
from tests.mlgitops.test_revision import Repo

pytestmark = pytest.mark.timeout(300)


def _record(verdict: str, model_hash: str, reason: str = "made up") -> str:
    return json.dumps({"verdict": verdict, "reason": reason, "challenger_model_hash": model_hash})


# ---------------------------------------------------------------------------------- a commit

A = release_for("A")
B = release_for("B")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


def test_a_commit_without_a_gate_record_predates_it_and_passes(repo: Repo) -> None:
    commit = repo.commit({"release.json": A.model_dump_json()})
    assert committed_verdict(repo.root, commit) is None
    require_released(repo.root, commit, "HEAD")


def test_a_commit_whose_gate_passed_its_release_passes(repo: Repo) -> None:
    commit = repo.commit(
        {"release.json": A.model_dump_json(), "metrics/gate.json": _record("PASS", A.model_hash)}
    )
    verdict = committed_verdict(repo.root, commit)
    assert verdict is not None
    assert (verdict.verdict, verdict.model_hash, verdict.path) == (
        "PASS",
        A.model_hash,
        "metrics/gate.json",
    )
    require_released(repo.root, commit, "HEAD")


@pytest.mark.parametrize("verdict", ["FAIL", "INCONCLUSIVE"])
def test_a_committed_experiment_that_lost_is_refused_in_one_line(repo: Repo, verdict: str) -> None:
    # The experiment's model was judged; the release record still names A.
    commit = repo.commit(
        {"release.json": A.model_dump_json(), "metrics/gate.json": _record(verdict, B.model_hash)}
    )
    with pytest.raises(ReleaseNotPassedError) as raised:
        require_released(repo.root, commit, "main")
    message = str(raised.value)
    assert message == (
        f"main ({commit[:12]}) is not a release: its gate verdict is {verdict} "
        f"(metrics/gate.json) for model {B.model_hash[:19]}, which its release does not pin; "
        f"its release record still names {A.bento_tag}"
    )
    assert ReleaseNotPassedError.exit_code == 28


def test_a_pass_about_another_model_than_the_release_is_refused(repo: Repo) -> None:
    commit = repo.commit(
        {"release.json": A.model_dump_json(), "metrics/gate.json": _record("PASS", B.model_hash)}
    )
    with pytest.raises(ReleaseNotPassedError, match="passed model .* but its release pins"):
        require_released(repo.root, commit, "HEAD")


def test_a_non_pass_about_the_release_itself_is_refused_too(repo: Repo) -> None:
    commit = repo.commit(
        {"release.json": A.model_dump_json(), "metrics/gate.json": _record("FAIL", A.model_hash)}
    )
    with pytest.raises(ReleaseNotPassedError, match="FAIL .* for the model its release pins"):
        require_released(repo.root, commit, "HEAD")


def test_the_gate_record_is_found_where_params_put_it(repo: Repo) -> None:
    commit = repo.commit(
        {
            "params.yaml": "paths:\n  gate_metrics: out/verdict.json\n",
            "release.json": A.model_dump_json(),
            "out/verdict.json": _record("INCONCLUSIVE", B.model_hash),
            # Not where params say: ignored.
            "metrics/gate.json": _record("PASS", A.model_hash),
        }
    )
    with pytest.raises(ReleaseNotPassedError, match=r"INCONCLUSIVE \(out/verdict.json\)"):
        require_released(repo.root, commit, "HEAD")


@pytest.mark.parametrize("text", ["{not json", '{"verdict": "PASS"}', "[1, 2]"])
def test_an_unreadable_gate_record_is_an_artifact_error(repo: Repo, text: str) -> None:
    commit = repo.commit({"release.json": A.model_dump_json(), "metrics/gate.json": text})
    with pytest.raises(ArtifactError, match=rf"^{commit[:12]}:metrics/gate.json: "):
        require_released(repo.root, commit, "HEAD")


def test_an_onnx_release_is_judged_by_its_pipeline() -> None:
    onnx = ReleaseRecord.model_validate(
        {**A.model_dump(), "model_format": "onnx", "source_model_hash": B.model_hash}
    )
    assert judged_model_hash(onnx) == B.model_hash
    assert judged_model_hash(A) == A.model_hash
    from mlgitops.verdict import Verdict

    assert refusal(Verdict("PASS", B.model_hash, "", "metrics/gate.json"), onnx) is None
    assert refusal(Verdict("PASS", A.model_hash, "", "metrics/gate.json"), onnx) is not None


# --------------------------------------------------------------------------------- this tree


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory):
    """A small project through the gate (off: PASS) and the rules."""
    from tests.support.project import params_in, write_small_dataset

    params = params_in(tmp_path_factory.mktemp("verdict"))
    write_small_dataset(params.data.path)
    for stage in (validate, split, train, evaluate, score_reference, gate, rules):
        stage.run(params)
    return params


def _with_verdict(params, verdict: str) -> None:
    passed = load_gate_report(params.paths.gate_metrics)
    save_record(
        GateReport(**{**passed.model_dump(), "verdict": verdict, "reason": "made up"}),
        params.paths.gate_metrics,
    )


def test_the_tree_verdict_must_be_about_the_tree_model(judged) -> None:
    report = tree_verdict(judged)
    assert report.challenger_model_hash == "sha256:" + file_sha256(judged.paths.model)
    original = judged.paths.gate_metrics.read_bytes()
    try:
        stale = load_gate_report(judged.paths.gate_metrics)
        save_record(
            GateReport(**{**stale.model_dump(), "challenger_model_hash": "sha256:" + "0" * 64}),
            judged.paths.gate_metrics,
        )
        with pytest.raises(ArtifactError, match="judged model sha256:000000000000, not "):
            tree_verdict(judged)
    finally:
        judged.paths.gate_metrics.write_bytes(original)


@pytest.mark.parametrize(
    ("verdict", "error"), [("FAIL", GateFailedError), ("INCONCLUSIVE", GateInconclusiveError)]
)
def test_the_rules_stage_keeps_the_released_rules_on_a_non_pass(judged, verdict, error) -> None:
    outputs = (judged.paths.prometheus_rules, judged.paths.prometheus_rule_resource)
    original = judged.paths.gate_metrics.read_bytes()
    # The released model's rules, whatever this tree's reference would give.
    for path in outputs:
        path.write_text(f"# the released rules of {path.name}\n")
    released = {path: path.read_bytes() for path in outputs}
    try:
        _with_verdict(judged, verdict)
        line = rules.run(judged)
        assert line == (
            f"gate verdict {verdict} (see {judged.paths.gate_report}): release not changed; "
            f"{outputs[0]} and {outputs[1]} keep the released model's rules"
        )
        assert {path: path.read_bytes() for path in outputs} == released
        # No released rules to keep: the verdict's error, nothing written.
        outputs[1].unlink()
        with pytest.raises(error, match="no release to keep"):
            rules.run(judged)
        assert not outputs[1].exists()
    finally:
        judged.paths.gate_metrics.write_bytes(original)
    assert rules.run(judged).endswith(f"{outputs[0]} and {outputs[1]}")
    assert outputs[0].read_bytes() != released[outputs[0]]

from __future__ import annotations

import json
import tarfile

import yaml

from mlgitops.packaging.bento import pinned_requirements
from mlgitops.release import load_release
from mlgitops.stages import evaluate, gate, package, split, train, validate
from tests.support.project import params_in


def _through_gate(config):
    for stage in (validate, split, train, evaluate, gate):
        stage.run(config)


def test_params_hash_ignores_paths_and_serving(tmp_path):
    a = params_in(tmp_path / "a")
    b = params_in(tmp_path / "b", serving={"max_batch_size": 7}, package={"bento_name": "other"})
    assert package.params_hash(a) == package.params_hash(b)
    c = params_in(tmp_path / "c", threshold={"false_positive_cost": 1.0})
    assert package.params_hash(a) != package.params_hash(c)


def test_package_writes_release_bento_and_pin(params):
    _through_gate(params)
    summary = package.run(params)
    release = load_release(params.paths.release)
    assert release.bento_tag in summary
    assert release.image == f"{params.package.image_repository}:{release.bento_version}"
    assert len(release.bento_version) == params.package.version_length
    metrics = json.loads(params.paths.metrics.read_text())
    assert release.threshold == metrics["threshold"]
    with tarfile.open(params.paths.bento_archive) as archive:
        assert any(name.endswith("bento.yaml") for name in archive.getnames())
    patch = yaml.safe_load(params.paths.k8s_release_patch.read_text())
    template = patch["spec"]["template"]
    assert template["metadata"]["annotations"]["mlgitops.io/model-hash"] == release.model_hash
    assert template["spec"]["containers"][0]["image"] == release.image


def test_bento_version_follows_what_the_pod_serves(params):
    _through_gate(params)
    pins = pinned_requirements(params.paths.requirements_lock)
    first = package.make_release(params, pins)
    assert package.make_release(params, pins).bento_version == first.bento_version
    # A library upgrade in the lock is a new bento, even for the same model.
    upgraded = [*pins[:-1], pins[-1] + ".post1"]
    assert package.make_release(params, upgraded).bento_version != first.bento_version
    changed = params.model_copy(
        update={"threshold": params.threshold.model_copy(update={"policy": "fixed"})}
    )
    evaluate.run(changed)
    second = package.make_release(changed, pins)
    assert second.model_hash == first.model_hash
    assert second.bento_version != first.bento_version

"""The image and the manifests must agree on who the process runs as."""

from __future__ import annotations

import re

import yaml

from tests.support.project import REPO_ROOT


def test_image_user_is_the_pods_run_as_user():
    containerfile = (REPO_ROOT / "src/mlgitops/image/Containerfile").read_text()
    uid = int(re.search(r"^ARG BENTO_UID=(\d+)$", containerfile, re.MULTILINE).group(1))
    deployment = yaml.safe_load((REPO_ROOT / "k8s/base/deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == uid
    for container in pod["containers"]:
        assert container["securityContext"]["runAsUser"] == uid

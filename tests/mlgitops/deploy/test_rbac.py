"""The deployer's Role, enforced: the fake API server authenticates the deployer's
ServiceAccount token and authorizes every request against the Role and RoleBinding that
`k8s/bootstrap/staging` applies (tests/support/fake_kube/rbac.py). Deploy, dry run, automatic
rollback, rollback and history work with it; anything outside it is a 403."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mlgitops.deploy.kube import Kube, KubeError
from mlgitops.errors import DeployError
from tests.mlgitops.deploy.conftest import UNSIGNED_COMMANDS
from tests.mlgitops.deploy.helpers import (
    DEPLOYMENT,
    STAGING_NS,
    GitOpsRepo,
    credentials_secret,
    deployed_tag,
    history_entries,
    release_for,
)
from tests.support.fake_kube import FakeKubeServer

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(180)]

DEPLOYER = f"system:serviceaccount:{STAGING_NS}:mlgitops-deployer"


@pytest.fixture
def deployer_kubeconfig(
    fake_kube: FakeKubeServer, kubectl: Any, gitops_repo: GitOpsRepo, tmp_path: Path
) -> Path:
    """The staging environment bootstrapped by an admin, RBAC switched on, and a kubeconfig
    holding the deployer ServiceAccount's token."""
    bootstrap = gitops_repo.path / "k8s" / "bootstrap" / "staging"
    kubectl("apply", "--server-side", "-k", str(bootstrap), check=True)
    fake_kube.put_object(credentials_secret(STAGING_NS))  # the admin's Secret the pods mount
    fake_kube.enable_rbac()
    token = fake_kube.service_account_token(STAGING_NS, "mlgitops-deployer")
    return fake_kube.write_kubeconfig(tmp_path / "deployer.kubeconfig", STAGING_NS, token)


@pytest.fixture
def deployer(
    deployer_kubeconfig: Path, gitops_repo: GitOpsRepo, capsys: pytest.CaptureFixture[str]
) -> Any:
    from mlgitops.cli.main import main

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        unsigned = ["--allow-unverified"] if args[0] in UNSIGNED_COMMANDS else []
        code = main(
            [
                *args,
                *unsigned,
                "--repo",
                str(gitops_repo.path),
                "--kubeconfig",
                str(deployer_kubeconfig),
            ]
        )
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def _refusals(fake: FakeKubeServer) -> list[str]:
    return [f"{r.method} {r.path} {r.status}" for r in fake.requests if r.status in (401, 403)]


def test_the_narrowed_role_suffices_to_deploy_roll_back_and_read_history(
    deployer: Any, fake_kube: FakeKubeServer, gitops_repo: GitOpsRepo
) -> None:
    gitops_repo.commit_model("A")
    code, out, err = deployer("deploy", "--env", "staging", "--dry-run")
    assert code == 0, err
    code, _, err = deployer("deploy", "--env", "staging")  # creates every object by apply
    assert code == 0, err
    gitops_repo.commit_model("B")
    assert deployer("deploy", "--env", "staging")[0] == 0
    gitops_repo.commit_model("C")
    fake_kube.fail_image(release_for("C").image)
    code, _, err = deployer("deploy", "--env", "staging", "--timeout", "30")
    assert code == 10, err  # rolled out, failed, rolled back automatically
    assert deployed_tag(fake_kube) == release_for("B").image
    code, _, err = deployer("rollback", "--env", "staging")
    assert code == 0, err
    assert deployed_tag(fake_kube) == release_for("A").image
    code, out, err = deployer("history", "--env", "staging")
    assert code == 0, err
    assert "rollback" in out

    assert _refusals(fake_kube) == []
    outcomes = [(e["kind"], e["outcome"]) for e in history_entries(fake_kube)]
    assert outcomes == [
        ("deploy", "succeeded"),
        ("deploy", "succeeded"),
        ("deploy", "failed"),
        ("auto-rollback", "succeeded"),
        ("rollback", "succeeded"),
    ]
    assert fake_kube.get_object("leases", f"mlgitops-deploy-{DEPLOYMENT}", STAGING_NS) is None


def _deployment(name: str) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": STAGING_NS},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.example.com/a:1"}]},
            },
        },
    }


def _forbidden(kube_call: Any) -> str:
    with pytest.raises(KubeError) as raised:
        kube_call()
    assert raised.value.status == 403, raised.value
    return str(raised.value)


def test_everything_outside_the_role_is_forbidden(
    deployer_kubeconfig: Path, fake_kube: FakeKubeServer
) -> None:
    fake_kube.put_object(_deployment("other"))  # another team's workload, by the admin
    fake_kube.put_object(
        {"apiVersion": "v1", "kind": "Secret",
         "metadata": {"name": "db", "namespace": STAGING_NS}, "data": {}}
    )  # fmt: skip
    kube = Kube.connect(deployer_kubeconfig)
    try:
        # Patching another Deployment (to mount the db Secret, say) is refused...
        mounted = _deployment("other")
        mounted["spec"]["template"]["spec"]["volumes"] = [
            {"name": "db", "secret": {"secretName": "db"}}
        ]
        assert _forbidden(lambda: kube.apply(mounted)) == (
            f'deployments.apps "other" is forbidden: User "{DEPLOYER}" cannot patch resource '
            f'"deployments" in API group "apps" in the namespace "{STAGING_NS}" (HTTP 403)'
        )
        # ...and so are creating a Deployment of another name by apply, reading Secrets,
        # listing Deployments and deleting one.
        assert _forbidden(lambda: kube.apply(_deployment("sneaky"))).startswith(
            f'deployments.apps "sneaky" is forbidden: User "{DEPLOYER}" cannot patch resource'
        )
        assert 'cannot get resource "secrets"' in _forbidden(
            lambda: kube.get("v1", "Secret", "db", STAGING_NS)
        )
        assert 'cannot list resource "deployments"' in _forbidden(
            lambda: kube.list("apps/v1", "Deployment", STAGING_NS)
        )
        assert 'cannot delete resource "deployments"' in _forbidden(
            lambda: kube.delete("apps/v1", "Deployment", "other", STAGING_NS)
        )
        # Its own Deployment is allowed (by name).
        kube.apply(_deployment(DEPLOYMENT))
    finally:
        kube.close()
    assert (
        "volumes"
        not in fake_kube.get_object("deployments", "other", STAGING_NS)["spec"]["template"]["spec"]
    )


def test_a_token_that_is_unknown_or_of_a_deleted_account_is_401(
    deployer_kubeconfig: Path, fake_kube: FakeKubeServer, tmp_path: Path
) -> None:
    def read_with(kubeconfig: Path) -> object:
        kube = Kube.connect(kubeconfig)
        try:
            return kube.get("apps/v1", "Deployment", DEPLOYMENT, STAGING_NS)
        finally:
            kube.close()

    assert read_with(deployer_kubeconfig) is None  # allowed; there is none yet
    stranger = fake_kube.write_kubeconfig(tmp_path / "stranger", STAGING_NS, "no-such-token")
    for kubeconfig in (stranger, deployer_kubeconfig):
        if kubeconfig == deployer_kubeconfig:
            fake_kube.delete_object("serviceaccounts", "mlgitops-deployer", STAGING_NS)
        with pytest.raises(DeployError) as raised:
            read_with(kubeconfig)
        assert str(raised.value) == (
            "the API server refused the kubeconfig's credentials (HTTP 401)"
        )

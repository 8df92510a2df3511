"""`mlgitops revert serve`: Alertmanager's webhook prepares the revert branch once; every bad
request is a 4xx that changes nothing."""

from __future__ import annotations

import json
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mlgitops.config import load_params
from mlgitops.revert.server import ServerSettings, authorized, create_app
from tests.mlgitops.revert.helpers import A, B, ReleaseRepo, payload, serving

if TYPE_CHECKING:
    from starlette.testclient import TestClient

BRANCH = f"revert/{B.bento_version}"
TOKEN = "s3cret-token"


def test_an_alert_prepares_the_branch_once(repo: ReleaseRepo, tmp_path: Path) -> None:
    main_before = repo.git("rev-parse", "main")
    with serving(repo.path, tmp_path, TOKEN) as receiver:
        first = receiver.post(payload(fingerprint="f00d"), token=TOKEN)
        again = receiver.post(payload(fingerprint="f00d"), token=TOKEN)
        other = receiver.post(payload(fingerprint="beef"), token=TOKEN)

    assert first.status_code == 202, first.text
    answer = first.json()
    assert answer["status"] == "prepared"
    assert answer["branch"] == BRANCH
    assert (answer["removed"], answer["restored"]) == (B.bento_tag, A.bento_tag)
    assert answer["fingerprints"] == ["f00d"]
    assert answer["revert_commit"] == repo.git("rev-parse", BRANCH)
    # The same alert, or another alert about the same release: one branch.
    for later in (again, other):
        assert later.status_code == 200, later.text
        assert later.json()["status"] == "already prepared"
        assert later.json()["branch"] == BRANCH
    assert repo.git("rev-parse", "main") == main_before
    assert f"RealizedFprHighFast f00d: prepared {BRANCH}" in receiver.log
    assert f"RealizedFprHighFast beef: already prepared {BRANCH}" in receiver.log
    assert repo.git("for-each-ref", "--format=%(refname)", "refs/heads/").splitlines() == [
        "refs/heads/main",
        f"refs/heads/{BRANCH}",
    ]
    assert repo.blob(BRANCH, "release.json") == repo.blob("main~1", "release.json")
    # The PR body, with the alert as evidence, where params revert.pr_body_dir says.
    body = Path(answer["pr_body"])
    assert body == repo.path / "reports/revert" / f"revert-{B.bento_version}.md"
    text = body.read_text()
    assert "| RealizedFprHighFast | firing | critical |" in text
    assert "f00d" in text
    assert json.loads(body.with_suffix(".alert.json").read_text())["alerts"][0]["fingerprint"] == (
        "f00d"
    )
    # Nothing else in the work tree (the project's .gitignore ignores reports/revert/).
    assert repo.git("status", "--porcelain", "--untracked-files=all").splitlines() == [
        f"?? reports/revert/revert-{B.bento_version}.alert.json",
        f"?? reports/revert/revert-{B.bento_version}.md",
    ]


def test_unauthenticated_or_malformed_requests_change_nothing(
    repo: ReleaseRepo, tmp_path: Path
) -> None:
    before = repo.state()
    with serving(repo.path, tmp_path, TOKEN) as receiver:
        missing = receiver.post(payload())
        wrong = receiver.post(payload(), token="s3cret-tokem")
        malformed = receiver.post(None, token=TOKEN, raw=b'{"version": "4", "alerts": [')
        unauthenticated_garbage = receiver.post(None, raw=b"garbage")

    for response in (missing, wrong, unauthenticated_garbage):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert "bearer token" in response.json()["error"]
    assert malformed.status_code == 400
    assert malformed.json()["error"].startswith("body is not valid JSON")
    assert repo.state() == before


@pytest.fixture
def client(repo: ReleaseRepo) -> TestClient:
    """The app in-process (the real server is tested above)."""
    with warnings.catch_warnings():
        # Starlette's test client announces a move to httpx2; httpx is what the lock has.
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    params = load_params(repo.path / "params.yaml")
    settings = ServerSettings.from_params(
        params,
        repo=repo.path,
        token=TOKEN,
        pr_body_dir=repo.path / "reports/revert",
        monitor_summary=repo.path / "reports/monitor/summary.json",
    )
    return TestClient(create_app(settings), headers={"Authorization": f"Bearer {TOKEN}"})


def test_resolved_and_unmatched_alerts_are_acknowledged_and_ignored(
    client: TestClient, repo: ReleaseRepo
) -> None:
    before = repo.state()
    resolved = client.post("/alerts", json=payload("resolved"))
    warning = client.post("/alerts", json=payload(severity="warning"))
    other_team = client.post("/alerts", json=payload(team="payments"))

    assert resolved.status_code == 200
    assert resolved.json() == {"status": "ignored", "reason": "resolved"}
    for response in (warning, other_team):
        assert response.status_code == 200
        assert response.json()["reason"] == "no firing alert matches severity=critical,team=ml"
    assert repo.state() == before


def test_field_errors_are_422_and_huge_bodies_413(client: TestClient, repo: ReleaseRepo) -> None:
    before = repo.state()
    body = payload()
    del body["alerts"][0]["fingerprint"]
    missing = client.post("/alerts", json=body)
    huge = client.post("/alerts", content=b"[" + b" " * (2 * 1024 * 1024) + b"]")

    assert missing.status_code == 422
    assert missing.json() == {"error": "alerts.0.fingerprint: Field required"}
    assert huge.status_code == 413
    assert repo.state() == before


def test_no_earlier_release_is_409(client: TestClient, repo: ReleaseRepo) -> None:
    repo.git("reset", "-q", "--hard", "main~1")  # main has release A only
    before = repo.state()
    response = client.post("/alerts", json=payload(bento_tag=A.bento_tag))
    assert response.status_code == 409
    assert "there is no earlier release to restore" in response.json()["error"]
    assert repo.state() == before


def test_a_rollback_is_not_undone_by_the_next_alert(client: TestClient, repo: ReleaseRepo) -> None:
    assert client.post("/alerts", json=payload()).status_code == 202
    repo.git("merge", "-q", "--ff-only", BRANCH)  # the PR is merged: main runs A again
    before = repo.state()

    late = client.post("/alerts", json=payload(fingerprint="late"))
    about_a = client.post("/alerts", json=payload(fingerprint="next", bento_tag=A.bento_tag))

    # A late alert about B, the release just removed, is not about what main runs now.
    assert late.status_code == 409
    assert late.json()["error"].startswith(
        f"alert RealizedFprHighFast is about {B.bento_tag}, not {A.bento_tag}, the release main"
        " pins now: not reverting"
    )
    # One about A would restore B, which a rollback removed: a human decides.
    assert about_a.status_code == 409
    assert f"would restore {B.bento_tag}, which branch {BRANCH} removed" in about_a.json()["error"]
    assert repo.state() == before


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (None, False),
        ("", False),
        (f"Basic {TOKEN}", False),
        (f"Bearer {TOKEN}x", False),
        ("Bearer ", False),
    ],
)
def test_authorization_header(header: str | None, ok: bool) -> None:
    assert authorized(header, TOKEN) is ok


def test_concurrent_alerts_make_one_branch(repo: ReleaseRepo, tmp_path: Path) -> None:
    with serving(repo.path, tmp_path, TOKEN) as receiver, ThreadPoolExecutor(4) as pool:
        bodies = [payload(fingerprint=f"fp{i}") for i in range(4)]
        responses = list(pool.map(lambda body: receiver.post(body, token=TOKEN), bodies))

    codes = sorted(response.status_code for response in responses)
    assert codes == [200, 200, 200, 202], [r.text for r in responses]
    assert {r.json()["branch"] for r in responses} == {BRANCH}
    heads = repo.git("for-each-ref", "--format=%(refname)", "refs/heads/").splitlines()
    assert heads == ["refs/heads/main", f"refs/heads/{BRANCH}"]


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        (A.bento_tag, f"is about {A.bento_tag}, not {B.bento_tag}, the release main pins now"),
        (None, f"carries no bento_tag label, not {B.bento_tag}, the release main pins now"),
        ("", f"carries no bento_tag label, not {B.bento_tag}"),
    ],
)
def test_an_alert_about_another_release_or_none_is_409(
    client: TestClient, repo: ReleaseRepo, tag: str | None, message: str
) -> None:
    before = repo.state()
    response = client.post("/alerts", json=payload(bento_tag=tag))
    assert response.status_code == 409
    error = response.json()["error"]
    assert message in error
    assert "\n" not in error
    assert repo.state() == before


def test_only_the_alerts_about_the_current_release_count(
    client: TestClient, repo: ReleaseRepo
) -> None:
    # Alertmanager groups alerts: an old release's beside the current one's in one payload.
    body = payload(fingerprint="old", bento_tag=A.bento_tag)
    body["alerts"] += payload(fingerprint="new")["alerts"]
    body["alerts"] += payload(fingerprint="untagged", bento_tag=None)["alerts"]

    response = client.post("/alerts", json=body)

    assert response.status_code == 202, response.text
    assert response.json()["fingerprints"] == ["new"]
    assert response.json()["restored"] == A.bento_tag
    assert repo.tree(BRANCH) == repo.tree("main~1")


def test_nesting_and_huge_numbers_are_400_not_500(client: TestClient, repo: ReleaseRepo) -> None:
    before = repo.state()
    nested = client.post("/alerts", content=b"[" * 100_000 + b"]" * 100_000)
    digits = client.post("/alerts", content=b'{"version": ' + b"9" * 5000 + b"}")
    for response in (nested, digits):
        assert response.status_code == 400, response.text
        assert response.json()["error"].startswith("body is not valid JSON")
    assert repo.state() == before


def test_labels_cannot_forge_a_log_line(repo: ReleaseRepo, tmp_path: Path) -> None:
    forged = "X\nmlgitops revert: RealizedFprHighFast abc: prepared revert/deadbeef"
    with serving(repo.path, tmp_path, TOKEN) as receiver:
        response = receiver.post(payload(alertname=forged), token=TOKEN)
    assert response.status_code == 202, response.text
    lines = [line for line in receiver.log.splitlines() if "prepared" in line]
    assert len(lines) == 1, receiver.log
    assert "X\\nmlgitops revert: RealizedFprHighFast abc: prepared revert/deadbeef" in lines[0]

"""The served API against its own OpenAPI document (issue 19 item 6): schemathesis, every check,
a bounded run (fixed examples per operation and seed, a time limit) finds nothing.

The server has both credentials (README, Serving: "Credentials"), so every route is guarded;
schemathesis sends each operation the token its `security` names (schemathesis.toml, from the
environment) and its `ignored_auth` check probes the guarded routes without a token and with a
wrong one (401 expected). The stateful phase follows the document's link from /predict's
`request_id` to /feedback, so labels for real predictions are posted too (202, 200, 409).
The document itself takes the predict token, so it is fetched first. The commands are the ones a
person would run against a server:

    export MLGITOPS_FUZZ_PREDICT_TOKEN=<predict token> MLGITOPS_FUZZ_FEEDBACK_TOKEN=<feedback token>
    curl -s -H "Authorization: Bearer $MLGITOPS_FUZZ_PREDICT_TOKEN" \\
        http://127.0.0.1:3000/openapi.json > openapi.json
    schemathesis --config-file tests/mlgitops/serving/schemathesis.toml run openapi.json \\
        --url http://127.0.0.1:3000 --checks all --max-examples 50 --seed 1 --workers 1

(against `mlgitops serve`, which sets no predict token, the predict token is any value and the
feedback token is `$(cat reports/serve/feedback-token)`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlgitops.serving.features import ERROR_CODES
from tests.mlgitops.serving.conftest import LiveServer, Packaged, run_server, wait_for

CONFIG = Path(__file__).with_name("schemathesis.toml")
MAX_EXAMPLES = 50
SEED = 1
TIME_LIMIT = 420
GUARDED_BY_PREDICT_TOKEN = (("/predict", "post"), ("/metadata", "get"), ("/schema", "get"))


@pytest.fixture(scope="module")
def guarded_server(
    packaged: Packaged, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server with a predict token, a feedback token and a shared request id key."""
    with run_server(packaged, tmp_path_factory.mktemp("fuzz-server"), predict_token=True) as server:
        if not wait_for(f"{server.url}/readyz", 200, 90, server.process):
            raise RuntimeError(f"server not ready:\n{server.log_file.read_text()[-3000:]}")
        yield server


def _document(server: LiveServer) -> dict:
    answer = httpx.get(f"{server.url}/openapi.json", headers=server.read_auth(), timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_document_states_the_credentials_and_their_refusals(
    live_server: LiveServer, guarded_server: LiveServer
) -> None:
    """The spec is the behaviour: what each route refuses for credentials is documented."""
    for server in (live_server, guarded_server):
        document = _document(server)
        paths = document["paths"]
        feedback = paths["/feedback"]["post"]
        assert feedback["security"] == [{"feedbackToken": []}]
        # 401 no or a wrong token, 403 no feedback token set or an id not issued here,
        # 409 another label for the row, 422 invalid_unicode, row_out_of_range, id_mismatch.
        assert {"401", "403", "409", "422"} <= set(feedback["responses"])
        assert document["components"]["securitySchemes"]["feedbackToken"] == {
            "type": "http",
            "scheme": "bearer",
        }
        for path, method in GUARDED_BY_PREDICT_TOKEN:
            operation = paths[path][method]
            if server.predict_token:
                assert operation["security"] == [{"predictToken": []}], path
                assert "401" in operation["responses"], path
            else:  # open reads: no 401 to document
                assert "security" not in operation, path
                assert "401" not in operation["responses"], path
        refusal = paths["/predict"]["post"]["responses"]["422"]["content"]["application/json"]
        codes = set(refusal["schema"]["properties"]["error"]["enum"])
        assert codes == set(ERROR_CODES)
        assert {"invalid_unicode", "unauthorized", "feedback_not_configured"} <= codes
        assert {"request_id_unknown", "row_out_of_range", "id_mismatch", "label_conflict"} <= codes
        assert {"too_long", "request_timeout", "header_too_large", "overloaded"} <= codes
    # Without the predict token the guarded server's document itself is refused, as documented.
    refused = httpx.get(f"{guarded_server.url}/openapi.json", timeout=30)
    assert refused.status_code == 401
    assert refused.json()["error"] == "unauthorized"


@pytest.mark.slow
@pytest.mark.timeout(TIME_LIMIT + 60)
def test_schemathesis_finds_nothing(guarded_server: LiveServer, tmp_path: Path) -> None:
    assert guarded_server.predict_token
    assert guarded_server.feedback_token
    document = tmp_path / "openapi.json"
    document.write_text(json.dumps(_document(guarded_server)))
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(CONFIG),
        "run", str(document),
        "--url", guarded_server.url,
        "--checks", "all",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--workers", "1",
        "--request-timeout", "30",
        "--report", "junit", "--report-dir", str(tmp_path),
    ]  # fmt: skip
    env = {
        **os.environ,
        "MLGITOPS_FUZZ_PREDICT_TOKEN": guarded_server.predict_token,
        "MLGITOPS_FUZZ_FEEDBACK_TOKEN": guarded_server.feedback_token,
    }
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    output = done.stdout + done.stderr
    counts = re.search(r"(\d+) generated, (\d+) passed", output)
    assert done.returncode == 0, output[-6000:]
    assert counts is not None, output[-3000:]
    generated, passed = map(int, counts.groups())
    print(f"\nschemathesis: {generated} cases generated, {passed} passed")
    # Every operation of the document was tested, with a few hundred cases in all.
    assert "Tested: 4" in output, output[-3000:]
    assert generated == passed >= 200
    # The stateful phase labelled real predictions: /feedback stored some of them.
    labels = guarded_server.feedback_log.read_text().splitlines()
    assert labels, output[-3000:]

"""The prediction log's lines as the worker writes them (Runtime._render_predictions): the bytes
of every kind of line are pinned, so the contract (mlgitops.logline) cannot drift from what
earlier releases wrote and the monitor reads."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from mlgitops.serving.experiment import ExperimentScores
from mlgitops.serving.runtime import LoggedRequest, Runtime

RECORDS = [
    {"transaction_id": "t1", "timestamp": "2025-07-01T00:00:00Z", "amount": 12.5, "country": "DE"}
    | {"dropped": 1},
    {"amount": None, "country": None},
    {"transaction_id": 7, "amount": 3.0, "country": 12},
    {"timestamp": "2025-07-02T00:00:00Z", "amount": 1e300, "country": "\u00e9"},
]
SCORES = [0.1, 0.95, 0.5, 0.0]
LABELS = [0, 1, 1, 0]
AB = ExperimentScores(None, LABELS, ["champion", "challenger", "unassigned", "challenger"])
SHADOW = ExperimentScores(None, LABELS, ["champion"] * 4, [0.2, 0.3, 0.4, 0.5], [0, 0, 1, 1])

# Written by the worker before the contract module existed (same inputs): byte for byte.
EXPECTED = {
    "plain": [
        b'{"id":"t1","event_time":"2025-07-01T00:00:00Z","request_id":"rid","row":0,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:abc","features":{"amount":12.5,"country":"DE"},"score":0.1,"label":0,"client_request_id":"client-1"}',
        b'{"request_id":"rid","row":1,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:abc","features":{"amount":null,"country":null},"score":0.95,"label":1,"client_request_id":"client-1"}',
        b'{"id":7,"request_id":"rid","row":2,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:abc","features":{"amount":3.0,"country":12},"score":0.5,"label":1,"client_request_id":"client-1"}',
        b'{"event_time":"2025-07-02T00:00:00Z","request_id":"rid","row":3,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:abc","features":{"amount":1e+300,"country":"\xc3\xa9"},"score":0.0,"label":0,"client_request_id":"client-1"}',
    ],
    "ab_by_country": [
        b'{"id":"t1","event_time":"2025-07-01T00:00:00Z","request_id":"rid","row":0,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:abc","features":{"amount":12.5,"country":"DE"},"score":0.1,"label":0,"client_request_id":"client-1","arm":"champion","champion_version":"fraud-detector:abc","challenger_version":"fraud-detector:def","unit":"DE"}',
        b'{"request_id":"rid","row":1,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:def","features":{"amount":null,"country":null},"score":0.95,"label":1,"client_request_id":"client-1","arm":"challenger","champion_version":"fraud-detector:abc","challenger_version":"fraud-detector:def","unit":null}',
        b'{"id":7,"request_id":"rid","row":2,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:abc","features":{"amount":3.0,"country":12},"score":0.5,"label":1,"client_request_id":"client-1","arm":"unassigned","champion_version":"fraud-detector:abc","challenger_version":"fraud-detector:def","unit":"12"}',
        b'{"event_time":"2025-07-02T00:00:00Z","request_id":"rid","row":3,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:def","features":{"amount":1e+300,"country":"\xc3\xa9"},"score":0.0,"label":0,"client_request_id":"client-1","arm":"challenger","champion_version":"fraud-detector:abc","challenger_version":"fraud-detector:def","unit":"\xc3\xa9"}',
    ],
    "shadow_by_country": [
        b'{"id":"t1","event_time":"2025-07-01T00:00:00Z","request_id":"rid","row":0,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:abc","features":{"amount":12.5,"country":"DE"},"score":0.1,"label":0,"arm":"champion","champion_version":"fraud-detector:abc","challenger_version":"fraud-detector:def","unit":"DE","challenger_score":0.2,"challenger_label":0}',
        b'{"request_id":"rid","row":1,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:abc","features":{"amount":null,"country":null},"score":0.95,"label":1,"arm":"champion","champion_version":"fraud-detector:abc","challenger_version":"fraud-detector:def","unit":null,"challenger_score":0.3,"challenger_label":0}',
        b'{"id":7,"request_id":"rid","row":2,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:abc","features":{"amount":3.0,"country":12},"score":0.5,"label":1,"arm":"champion","champion_version":"fraud-detector:abc","challenger_version":"fraud-detector:def","unit":"12","challenger_score":0.4,"challenger_label":1}',
        b'{"event_time":"2025-07-02T00:00:00Z","request_id":"rid","row":3,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:abc","features":{"amount":1e+300,"country":"\xc3\xa9"},"score":0.0,"label":0,"arm":"champion","champion_version":"fraud-detector:abc","challenger_version":"fraud-detector:def","unit":"\xc3\xa9","challenger_score":0.5,"challenger_label":1}',
    ],
    "ab_by_id": [
        b'{"id":"t1","event_time":"2025-07-01T00:00:00Z","request_id":"rid","row":0,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:abc","features":{"amount":12.5,"country":"DE"},"score":0.1,"label":0,"arm":"champion","champion_version":"fraud-detector:abc","challenger_version":"fraud-detector:def"}',
        b'{"request_id":"rid","row":1,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:def","features":{"amount":null,"country":null},"score":0.95,"label":1,"arm":"challenger","champion_version":"fraud-detector:abc","challenger_version":"fraud-detector:def"}',
        b'{"id":7,"request_id":"rid","row":2,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:abc","features":{"amount":3.0,"country":12},"score":0.5,"label":1,"arm":"unassigned","champion_version":"fraud-detector:abc","challenger_version":"fraud-detector:def"}',
        b'{"event_time":"2025-07-02T00:00:00Z","request_id":"rid","row":3,"time":"2025-07-01T00:00:00.123+00:00","model_version":"fraud-detector:def","features":{"amount":1e+300,"country":"\xc3\xa9"},"score":0.0,"label":0,"arm":"challenger","champion_version":"fraud-detector:abc","challenger_version":"fraud-detector:def"}',
    ],
}
CASES = {
    "plain": ("client-1", None, None),
    "ab_by_country": ("client-1", "country", AB),
    "shadow_by_country": (None, "country", SHADOW),
    "ab_by_id": (None, "transaction_id", AB),
}


def _runtime(assignment_key: str | None) -> Runtime:
    runtime = Runtime.__new__(Runtime)  # the rendering needs no model store nor log sinks
    space = SimpleNamespace(
        id_column="transaction_id",
        time_column="timestamp",
        passthrough=("transaction_id", "timestamp", "dropped"),
    )
    runtime.model = SimpleNamespace(space=space)  # type: ignore[assignment]
    runtime.pinned = SimpleNamespace(bento_tag="fraud-detector:abc")  # type: ignore[assignment]
    runtime.experiment = (  # type: ignore[assignment]
        None
        if assignment_key is None
        else SimpleNamespace(
            challenger_bento_tag="fraud-detector:def", assignment_key=assignment_key
        )
    )
    return runtime


@pytest.mark.parametrize("case", list(CASES))
def test_log_lines_keep_their_bytes(case: str) -> None:
    client_request_id, key, scored = CASES[case]
    entry = LoggedRequest(
        "rid", client_request_id, 1751328000.123, [dict(r) for r in RECORDS], SCORES, LABELS, scored
    )
    assert list(_runtime(key)._render_predictions(entry)) == EXPECTED[case]

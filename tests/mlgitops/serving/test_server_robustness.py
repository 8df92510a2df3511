"""Fuzzing and sustained load against the real server: no 5xx, still ready, memory flat."""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitops.profile import CategoricalProfile, ReferenceProfile, load_profile
from mlgitops.serving.model import probe_records
from tests.mlgitops.serving.conftest import MAX_BATCH, LiveServer, Packaged

FUZZ_EXAMPLES = 600

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _record_values(profile: ReferenceProfile) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly-plausible records: right names and kinds, with every kind of wrong value mixed in."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, spec in profile.features.items():
        if isinstance(spec, CategoricalProfile):
            good: st.SearchStrategy[Any] = st.sampled_from(sorted(spec.frequencies) or ["x"])
        else:
            good = st.floats(-1e9, 1e9, allow_nan=False)
        fields[name] = st.one_of(good, good, good, _json_values)
    return st.fixed_dictionaries(fields)


def _mutated(profile: ReferenceProfile) -> st.SearchStrategy[dict[str, Any]]:
    names = list(profile.features)
    return st.builds(
        lambda record, drop, extra: {
            **{k: v for k, v in record.items() if k not in drop},
            **extra,
        },
        _record_values(profile),
        st.sets(st.sampled_from(names), max_size=2),
        st.dictionaries(st.text(max_size=6), _json_values, max_size=2),
    )


def _bodies(profile: ReferenceProfile) -> st.SearchStrategy[bytes]:
    records = st.lists(_mutated(profile), min_size=0, max_size=MAX_BATCH + 3)
    documents = st.one_of(
        st.fixed_dictionaries({"records": records}),
        st.fixed_dictionaries({"records": records}, optional={"extra": _json_values}),
        _json_values,
    )
    as_json = documents.map(lambda d: json.dumps(d, allow_nan=True).encode())
    return st.one_of(as_json, as_json, as_json, st.binary(max_size=64))


@pytest.mark.timeout(600)
def test_fuzzed_bodies_never_get_a_5xx(live_server: LiveServer, packaged: Packaged) -> None:
    profile = load_profile(packaged.artifacts.profile_file)
    sent: dict[int, int] = {}
    client = httpx.Client(base_url=live_server.url, timeout=30)

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(body=_bodies(profile))
    def check(body: bytes) -> None:
        response = client.post(
            "/predict", content=body, headers={"content-type": "application/json"}
        )
        sent[response.status_code] = sent.get(response.status_code, 0) + 1
        assert response.status_code < 500, (body[:300], response.text[:300])
        if response.status_code != 200:
            error = response.json()
            assert error["error"]
            assert isinstance(error["detail"], list)

    try:
        check()
    finally:
        client.close()
    assert sum(sent.values()) >= 500
    assert not any(code >= 500 for code in sent)
    assert sent.get(200, 0) > 0
    assert httpx.get(f"{live_server.url}/readyz").status_code == 200


async def _hammer(
    url: str, bodies: list[bytes], requests: int, connections: int, rss: Any, every: int
) -> tuple[dict[int, int], list[tuple[int, int]]]:
    """`requests` posts over `connections` keep-alive connections, as fast as the server answers;
    the server's RSS is sampled after every `every` answered requests: (answered, bytes)."""
    statuses: dict[int, int] = {}
    samples: list[tuple[int, int]] = [(0, rss())]
    sent = 0
    answered = 0

    async def worker() -> None:
        nonlocal sent, answered
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            while sent < requests:
                body = bodies[sent % len(bodies)]
                sent += 1
                r = await client.post(
                    "/predict", content=body, headers={"content-type": "application/json"}
                )
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                answered += 1
                if answered % every == 0:
                    samples.append((answered, rss()))

    await asyncio.gather(*(worker() for _ in range(connections)))
    return statuses, samples


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_thousands_of_requests_at_saturation(live_server: LiveServer, packaged: Packaged) -> None:
    """Sixteen connections sending back to back: bounded by a request count, not a clock, so it
    asks the same of a fast machine and of a busy CI runner."""
    profile = load_profile(packaged.artifacts.profile_file)
    rows = probe_records(profile, 400, seed=21)
    # Mostly single rows, some batches, some invalid: what a busy pod sees.
    bodies = [json.dumps({"records": [r]}).encode() for r in rows]
    bodies += [json.dumps({"records": rows[i : i + 20]}).encode() for i in range(0, 400, 20)]
    bodies += [json.dumps({"records": [{**rows[0], "amount": "x"}]}).encode()] * 10
    bodies += [json.dumps({"records": [{**rows[1], "hour": math.inf}]}).encode()] * 10
    requests = 3000
    started = time.monotonic()
    statuses, samples = asyncio.run(
        _hammer(live_server.url, bodies, requests, 16, live_server.rss_bytes, every=50)
    )
    seconds = time.monotonic() - started  # printed only: nothing asserted on time
    total = sum(statuses.values())
    assert total == requests
    assert not any(code >= 500 for code in statuses), statuses
    assert statuses.get(200, 0) > 0.8 * total
    # Memory is flat: the most the server held over the last sixth of the requests is within
    # 10% of the most it held over the first sixth (warm-up included).
    first = [rss for answered, rss in samples if answered <= requests / 6]
    last = [rss for answered, rss in samples if answered >= requests * 5 / 6]
    growth = max(last) / max(first) - 1
    print(f"\n{total} requests in {seconds:.0f}s ({total / seconds:.0f}/s), {statuses}, "
          f"RSS first sixth max {max(first) / 2**20:.1f} MiB, last sixth max "
          f"{max(last) / 2**20:.1f} MiB, growth {growth:.2%}")  # fmt: skip
    assert growth < 0.10
    assert httpx.get(f"{live_server.url}/readyz").status_code == 200

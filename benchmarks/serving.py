"""Serving benchmark: our BentoML service vs. a minimal FastAPI server vs. an in-process call.

Same model file, same JSON payloads, same CPU budget: every server is pinned to core 0 with
`taskset`, the load generator to core 1, and both servers get OMP_NUM_THREADS=1 (threads would
only contend on one core). Run from the repository root:

    .venv/bin/python benchmarks/serving.py [--duration 10] [--rate 150] [--fast-path-only]

It uses the pipeline's artifacts when they exist (artifacts/model/model.joblib with
reference_profile.json, schema.json and reports/evaluate.json), else a dev model of the same shape
(HistGradientBoosting, 250 iterations). Our service runs with its prediction log writing to a file,
as in production. The baseline is honest: FastAPI parses the body into a pydantic model, builds a
DataFrame from the records and calls `pipeline.predict_proba`, as a typical minimal server does.

Figures: single-row p50/p99 at a fixed request rate (open loop: requests go out on schedule
whatever the answers, so a stall is not hidden), and maximum throughput (closed loop, N
connections); each as a ratio to the baseline measured in the same run, alternating between the
servers in rounds. Both servers and the generator run at the same raised priority (nice -10, as
root) so other jobs on a shared host disturb them less, and the generator busy-polls during the
fixed-rate runs so its own wake-ups are not charged to the servers (the servers do idle between
requests, as in production). In process, on the server core, it also times the online
monitoring counters of a one-row request (feature and score bins, expected outcomes) and states
their share of one request's time at our maximum throughput: what the counters cost the service.
Our service is also measured with its limits off (`ours_unlimited`, MLGITOPS_LIMITS=false: no
header, time, connection or in-flight limits, no length caps, README "Limits"), in the same
alternating rounds: `limits_throughput_ratio` is what the limits leave of the maximum throughput.
In process it also times the compiled fast path of the random forest and the logistic
regression (`rf_*`, `lr_*`: each fitted with params.yaml's `train:` settings on generated rows)
against their own `pipeline.predict_proba` in the same run (`*_fast_path_gain`; the release
model's is `fast_path_gain`); `--fast-path-only` runs just that, without servers.
The last line holds the figures as key=value pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# The dev model lives in tests/support; importable when run as a script from anywhere.
sys.path.insert(0, str(REPO))

from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import descendants  # noqa: E402

SERVER_CPU = "0"
CLIENT_CPU = "1"
# Both servers and the load generator run at this (same) raised priority when allowed, so that
# other jobs on a shared host delay them less; it applies equally to every contender.
NICE = -10
VERSION = "bench00000000"
# In the order they are measured; ratios are ours against each.
SERVERS = ("ours", "ours_unlimited", "fastapi_onnx", "bentoml_default", "floor", "fastapi_joblib")
RATE_FROM = "fastapi_onnx"

# ---------------------------------------------------------------------------------------------
# (b) The baseline server, run as `python benchmarks/serving.py baseline-server ...`.


def baseline_app(model_file: str, threshold: float) -> Any:
    import joblib
    import pandas as pd
    from fastapi import FastAPI
    from pydantic import BaseModel

    pipeline = joblib.load(model_file)
    app = FastAPI()

    class Body(BaseModel):
        records: list[dict[str, Any]]

    def predict(body: Body) -> dict[str, Any]:
        frame = pd.DataFrame(body.records)
        scores = pipeline.predict_proba(frame)[:, 1]
        return {
            "predictions": [{"score": float(s), "label": int(s >= threshold)} for s in scores],
            "model_version": "baseline",
        }

    def readyz() -> str:
        return "ok"

    # This module uses postponed annotations; FastAPI needs the class itself to read the body.
    predict.__annotations__ = {"body": Body, "return": dict}
    readyz.__annotations__ = {"return": str}
    app.post("/predict")(predict)
    app.get("/readyz")(readyz)

    return app


def fastapi_onnx_app(onnx_file: str, profile_file: str, threshold: float) -> Any:
    """FastAPI + pydantic + ONNX Runtime on the exported model.onnx: what a careful engineer
    would write. A typed record model from the profile (floats, strings, optional where the
    profile allows gaps, no extra fields), the ONNX feeds built from it, one ORT thread."""
    from typing import Optional

    import numpy as np
    import onnxruntime as ort
    from fastapi import FastAPI
    from pydantic import BaseModel, ConfigDict, create_model

    from mlgitops.profile import load_profile

    profile = load_profile(profile_file)
    fields: dict[str, Any] = {}
    numeric: list[str] = []
    for name, spec in profile.features.items():
        kind: Any = float if spec.kind == "numeric" else str
        if spec.kind == "numeric":
            numeric.append(name)
        fields[name] = (Optional[kind], None) if profile.allows_missing(name) else (kind, ...)  # noqa: UP045
    record = create_model("Record", __config__=ConfigDict(extra="forbid"), **fields)

    class Body(BaseModel):
        records: list[record]  # type: ignore[valid-type]

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_file, options, providers=["CPUExecutionProvider"])
    names = list(profile.features)
    numeric_set = set(numeric)
    app = FastAPI()

    def predict(body: Body) -> dict[str, Any]:
        rows = [r.model_dump() for r in body.records]
        feeds = {}
        for name in names:
            column = [row[name] for row in rows]
            if name in numeric_set:
                values = [np.nan if v is None else v for v in column]
                feeds[name] = np.array(values, dtype=np.float64).reshape(-1, 1)
            else:
                values = ["" if v is None else v for v in column]
                feeds[name] = np.array(values, dtype=object).reshape(-1, 1)
        scores = session.run(["score"], feeds)[0][:, 0]
        return {
            "predictions": [{"score": float(s), "label": int(s >= threshold)} for s in scores],
            "model_version": "fastapi-onnx",
        }

    def readyz() -> str:
        return "ok"

    predict.__annotations__ = {"body": Body, "return": dict}
    readyz.__annotations__ = {"return": str}
    app.post("/predict")(predict)
    app.get("/readyz")(readyz)
    return app


def floor_app() -> Any:
    """The HTTP floor: the same ASGI server, a Starlette route that reads the body and answers
    a constant JSON prediction (no validation, no model)."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    answer = json.dumps(
        {"predictions": [{"score": 0.5, "label": 1}], "model_version": "floor"}
    ).encode()

    async def predict(request: Any) -> Response:
        await request.body()
        return Response(answer, media_type="application/json")

    async def readyz(request: Any) -> Response:
        return Response(b"ok")

    return Starlette(
        routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", readyz)]
    )


# BentoML's default way: an @bentoml.api method around the joblib pipeline, typed input
# (a list of records), pydantic validation by BentoML, default service settings.
BENTOML_DEFAULT_SERVICE = """
from typing import Any

import bentoml
import joblib
import pandas as pd


@bentoml.service(name="bentoml-default")
class DefaultService:
    def __init__(self) -> None:
        self.pipeline = joblib.load({model_file!r})

    @bentoml.api
    def predict(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        scores = self.pipeline.predict_proba(pd.DataFrame(records))[:, 1]
        labels = (scores >= {threshold!r}).astype(int)
        return {{
            "predictions": [{{"score": float(s), "label": int(y)}} for s, y in zip(scores, labels)],
            "model_version": "bentoml-default",
        }}
"""


def _uvicorn(app: Any, port: int) -> None:
    import uvicorn

    # As BentoML runs its workers: httptools and uvloop when installed, no access log.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def run_baseline_server(model_file: str, threshold: float, port: int) -> None:
    _uvicorn(baseline_app(model_file, threshold), port)


# ---------------------------------------------------------------------------------------------
# Model and payloads.


@dataclass(frozen=True)
class Subject:
    model_file: Path
    profile_file: Path
    schema_file: Path
    model_card_file: Path
    threshold: float
    metadata: dict[str, Any]
    source: str
    onnx_file: Path  # the export stage's graph of model_file (made here with its functions)


def export_onnx(model_file: Path, threshold: float, out: Path) -> Path:
    """model.onnx as the export stage writes it (same functions), for the ONNX baselines."""
    from mlgitops.export import onnx_graph
    from mlgitops.export.extract import from_pipeline
    from mlgitops.io import load_pipeline

    proto = onnx_graph.to_onnx(from_pipeline(load_pipeline(model_file)), threshold)
    out.write_bytes(proto.SerializeToString())
    return out


def pick_model(workdir: Path) -> Subject:
    from mlgitops.io import file_sha256

    model = REPO / "artifacts/model/model.joblib"
    profile = REPO / "artifacts/reference_profile.json"
    schema = REPO / "artifacts/schema.json"
    metrics = REPO / "reports/evaluate.json"
    card = REPO / "artifacts/model/model_card.json"
    if all(p.is_file() for p in (model, profile, schema, metrics, card)):
        threshold = float(json.loads(metrics.read_text())["threshold"])
        source = "pipeline"
    else:
        from tests.support.devmodel import make_dev_artifacts

        dev = make_dev_artifacts(workdir / "dev", rows=20000, max_iter=250)
        model, profile, schema = dev.model_file, dev.profile_file, dev.schema_file
        card = dev.model_card_file
        threshold = float(dev.metadata["threshold"])  # type: ignore[arg-type]
        source = "dev"
    metadata = {"threshold": threshold, "model_hash": f"sha256:{file_sha256(model)}"}
    onnx_file = export_onnx(model, threshold, workdir / "model.onnx")
    return Subject(model, profile, schema, card, threshold, metadata, source, onnx_file)


def make_payloads(profile: Any, count: int) -> list[bytes]:
    """Single-row bodies of complete, known-category records (what both servers accept), drawn
    from a ReferenceProfile."""
    import numpy as np

    from mlgitops.profile import CategoricalProfile

    rng = np.random.default_rng(0)
    payloads = []
    for _ in range(count):
        record: dict[str, Any] = {}
        for name, spec in profile.features.items():
            if isinstance(spec, CategoricalProfile):
                cats = list(spec.frequencies)
                probs = np.array([spec.frequencies[c] for c in cats])
                record[name] = cats[int(rng.choice(len(cats), p=probs / probs.sum()))]
            else:
                low = spec.min if spec.min is not None else 0.0
                high = spec.max if spec.max is not None else 1.0
                record[name] = round(
                    float(rng.uniform(low, min(high, low + 4 * (spec.std or 1)))), 2
                )
        payloads.append(json.dumps({"records": [record]}).encode())
    return payloads


# ---------------------------------------------------------------------------------------------
# Servers.


def wait_ready(port: int, path: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server on port {port} not ready after {timeout}s")


@contextmanager
def server(cmd: list[str], env: dict[str, str], port: int, ready: str) -> Iterator[int]:
    prefix = ["nice", "-n", str(NICE)] if _can_raise_priority() else []
    proc = subprocess.Popen(
        [*prefix, "taskset", "-c", SERVER_CPU, *cmd], env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    workers: list[int] = []
    try:
        wait_ready(port, ready, 90, proc)
        workers = descendants(proc.pid)
        yield proc.pid
    finally:
        # Our server's own process group; BentoML's workers (own sessions) are stopped by their
        # arbiter, and killed by pid if any is left.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in workers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _can_raise_priority() -> bool:
    return os.geteuid() == 0


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLGITOPS_")}
    env.update(
        BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="True", OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"),
    )  # fmt: skip
    return env


# ---------------------------------------------------------------------------------------------
# Load generator: raw HTTP/1.1 keep-alive over asyncio streams, light enough that one core can
# push several thousand requests per second.


class Conn:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        payload = await self.reader.readexactly(length)
        return status, payload


@dataclass
class LoadResult:
    latencies: list[float]
    statuses: dict[int, int]
    elapsed: float
    bodies: dict[int, bytes]

    def merge(self, other: LoadResult) -> LoadResult:
        statuses = dict(self.statuses)
        for code, n in other.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
        return LoadResult(
            self.latencies + other.latencies, statuses, self.elapsed + other.elapsed,
            {**self.bodies, **other.bodies},
        )  # fmt: skip

    @property
    def count(self) -> int:
        return sum(self.statuses.values())

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0

    @property
    def errors_5xx(self) -> int:
        return sum(n for code, n in self.statuses.items() if code >= 500)


async def closed_loop(port: int, payloads: list[bytes], conns: int, duration: float) -> LoadResult:
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    stop = time.perf_counter() + duration

    async def worker(offset: int) -> None:
        conn = Conn(port)
        i = offset
        while time.perf_counter() < stop:
            start = time.perf_counter()
            status, _ = await conn.request(payloads[i % len(payloads)])
            latencies.append(time.perf_counter() - start)
            statuses[status] = statuses.get(status, 0) + 1
            i += conns

    begin = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(conns)))
    return LoadResult(latencies, statuses, time.perf_counter() - begin, {})


async def open_loop(port: int, payloads: list[bytes], rate: float, duration: float) -> LoadResult:
    """Requests sent every 1/rate s whatever the answers, each on a free connection.

    Latency counts from the moment the request is written. The generator's own lateness against
    the schedule (timer granularity, about 1 ms) is not the server's; a real stall still shows,
    because later requests are sent on time, on other connections, and wait for the server.
    """
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    bodies: dict[int, bytes] = {}
    idle: list[Conn] = []
    tasks: list[asyncio.Task[None]] = []
    total = int(rate * duration)

    async def one(index: int) -> None:
        conn = idle.pop() if idle else Conn(port)
        sent = time.perf_counter()
        status, payload = await conn.request(payloads[index % len(payloads)])
        latencies.append(time.perf_counter() - sent)
        statuses[status] = statuses.get(status, 0) + 1
        if index < len(payloads):
            bodies[index] = payload
        idle.append(conn)

    # The generator's core busy-polls instead of halting between events: waking a halted vCPU
    # costs hundreds of microseconds here, which would be charged to whichever server is measured.
    spinning = True

    async def spin() -> None:
        while spinning:
            await asyncio.sleep(0)

    spinner = asyncio.create_task(spin())
    # Warm the pool so connection set-up is not measured.
    warm = [Conn(port) for _ in range(8)]
    for conn in warm:
        await conn.request(payloads[0])
    idle.extend(warm)
    begin = time.perf_counter()
    for k in range(total):
        delay = begin + k / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(k)))
    await asyncio.gather(*tasks)
    spinning = False
    await spinner
    return LoadResult(latencies, statuses, time.perf_counter() - begin, bodies)


def run_load(mode: str, port: int, payloads: list[bytes], **kw: float) -> LoadResult:
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    if _can_raise_priority() and os.getpriority(os.PRIO_PROCESS, 0) > NICE:
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
    try:  # the generator's own overhead and timer slack, not the servers', when available
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    if mode == "closed":
        return runner(closed_loop(port, payloads, int(kw["conns"]), kw["duration"]))
    return runner(open_loop(port, payloads, kw["rate"], kw["duration"]))


# ---------------------------------------------------------------------------------------------
# (c) In-process floor, pinned to the server core.


def in_process_floor(subject: Subject, payloads: list[bytes], repeat: int) -> dict[str, float]:
    # The served bento carries the score reference only for the pipeline's own model (package).
    shipped = REPO / "artifacts/monitoring/score_reference.json"
    reference = str(shipped) if subject.source == "pipeline" and shipped.is_file() else None
    code = f"""
import json, os, time, statistics, warnings
os.sched_setaffinity(0, {{{SERVER_CPU}}})
import joblib, pandas as pd
from mlgitops.profile import load_profile
from mlgitops.serving.features import validate_body
from mlgitops.serving.model import build_model
pipeline = joblib.load({str(subject.model_file)!r})
model = build_model(pipeline, load_profile({str(subject.profile_file)!r}), {subject.threshold})
bodies = [json.loads(p) for p in json.load(open({{path!r}}))]
def timed(fn):
    out = []
    for i in range({repeat}):
        body = bodies[i % len(bodies)]
        t = time.perf_counter(); fn(body); out.append(time.perf_counter() - t)
    out.sort()
    return out[len(out) // 2] * 1000, out[int(len(out) * 0.99)] * 1000
from mlgitops.serving.model import build_exported_model, reference_scores
profile = load_profile({str(subject.profile_file)!r})
graph = open({str(subject.onnx_file)!r}, "rb").read()
exported = build_exported_model(graph, profile, {subject.threshold},
                                reference_scores(pipeline, profile))
pipe = timed(lambda b: pipeline.predict_proba(pd.DataFrame(b["records"]))[:, 1])
ours, onnx = [], []
for _ in range(3):  # alternating: package.model_format pipeline (compiled) vs onnx (exported)
    ours.append(timed(lambda b: model.scores(validate_body(b, model.space, 1000))))
    onnx.append(timed(lambda b: exported.scores(validate_body(b, exported.space, 1000))))
ours, onnx = min(ours), min(onnx)
# What the online monitoring counters add to a one-row request, as the runtime calls them.
from mlgitops.monitoring.reference import load_score_reference
from mlgitops.serving.metrics import get_metrics
from mlgitops.serving.online import OnlineStats
reference = {reference!r}
online = OnlineStats(profile, load_score_reference(reference) if reference else None)
metrics = get_metrics("fraud-detector:benchmark")
metrics.prepare_monitoring(online, {{}})
counters = []
for i in range({repeat}):
    batch = validate_body(bodies[i % len(bodies)], model.space, 1000)
    scores = model.scores(batch)
    flags = [int(s >= {subject.threshold}) for s in scores.tolist()]
    t = time.perf_counter()
    metrics.observe_monitoring(online.batch(batch.columns, scores, flags))
    counters.append(time.perf_counter() - t)
counters.sort()
print(json.dumps({{"pipeline_p50_ms": pipe[0], "pipeline_p99_ms": pipe[1],
                  "compiled_p50_ms": ours[0], "compiled_p99_ms": ours[1],
                  "exported_p50_ms": onnx[0], "exported_p99_ms": onnx[1],
                  "counters_p50_ms": counters[len(counters) // 2] * 1000,
                  "runtime": model.scorer.runtime}}))
"""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump([p.decode() for p in payloads[:200]], handle)
        path = handle.name
    try:
        env = base_env(Path(tempfile.gettempdir()))
        out = subprocess.run(
            [sys.executable, "-c", code.replace("{path!r}", repr(path))],
            env=env, capture_output=True, text=True, check=True, timeout=600,
        )  # fmt: skip
    finally:
        Path(path).unlink()
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# (d) The compiled fast path of the other model families, in process, pinned to the server core.

# train.model values measured here, with the key prefix of their figures. The release model (the
# default HistGradientBoosting) is measured by the in-process floor above.
FAMILIES = {"random_forest": "rf", "logistic_regression": "lr"}


def family_fast_paths(rows: int, repeat: int, budget: float = 5.0) -> dict[str, Any]:
    """Per family: a pipeline fitted by the train stage with params.yaml's `train:` settings on
    `rows` generated rows, served through `build_model`; one-row requests (validate + score)
    through the chosen scorer vs `pipeline.predict_proba` on a DataFrame, alternating in three
    rounds of `repeat` requests or `budget` seconds (best round's p50 each). The gain is the
    pipeline's p50 over the compiled one's."""
    code = f"""
import json, os, sys, time
os.sched_setaffinity(0, {{{SERVER_CPU}}})
sys.path.insert(0, {str(REPO)!r})
import pandas as pd
from benchmarks.serving import make_payloads
from mlgitops.schema import TARGET_COLUMN
from mlgitops.serving.features import validate_body
from mlgitops.serving.model import build_model
from mlgitops.modeling.pipeline import fit
from tests.support.devmodel import PARAMS, TARGET, dev_data
data = dev_data({rows}, seed=7)
train = data.frame.rename(columns={{TARGET: TARGET_COLUMN}})
bodies = [json.loads(p) for p in make_payloads(data.profile, 200)]
def timed(fn):
    # Up to {repeat} requests or {budget} s a round, whichever ends first (a scikit-learn
    # path takes tens of milliseconds a row; a shared host makes it slower still).
    out, end = [], time.perf_counter() + {budget}
    for i in range({repeat}):
        body = bodies[i % len(bodies)]
        t = time.perf_counter(); fn(body); out.append(time.perf_counter() - t)
        if t > end:
            break
    out.sort()
    return out[len(out) // 2] * 1000
figures = {{}}
for kind, key in {FAMILIES!r}.items():
    pipeline = fit(train, data.schema, PARAMS.train.model_copy(update={{"model": kind}}))
    model = build_model(pipeline, data.profile, 0.5)
    pipe, ours = [], []
    for _ in range(3):
        pipe.append(timed(lambda b: pipeline.predict_proba(pd.DataFrame(b["records"]))[:, 1]))
        ours.append(timed(lambda b: model.scores(validate_body(b, model.space, 1000))))
    figures[f"{{key}}_runtime"] = model.scorer.runtime
    figures[f"{{key}}_pipeline_p50_ms"] = min(pipe)
    figures[f"{{key}}_compiled_p50_ms"] = min(ours)
    figures[f"{{key}}_fast_path_gain"] = min(pipe) / min(ours)
print(json.dumps(figures))
"""
    env = base_env(Path(tempfile.gettempdir()))
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
        timeout=1800,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def print_families(figures: dict[str, Any]) -> None:
    for key in FAMILIES.values():
        print(
            f"in-process {key}: pipeline.predict_proba p50 {figures[f'{key}_pipeline_p50_ms']:.3f}"
            f" ms; validate+compiled ({figures[f'{key}_runtime']}) p50 "
            f"{figures[f'{key}_compiled_p50_ms']:.3f} ms; gain "
            f"{figures[f'{key}_fast_path_gain']:.1f}x",
            flush=True,
        )


def key_values(figures: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in
                    figures.items())  # fmt: skip


# ---------------------------------------------------------------------------------------------


def package(subject: Subject, home: Path) -> str:
    os.environ["BENTOML_HOME"] = str(home)
    from mlgitops.packaging.bento import build_bento, pinned_requirements, save_model
    from mlgitops.release import ReleaseRecord

    # The service reads the release from the bento's pin; only the hash and threshold matter here.
    release = ReleaseRecord(
        bento_name="fraud-detector", bento_version=VERSION, model_tag=f"fraud-detector:{VERSION}",
        model_hash=subject.metadata["model_hash"], data_hash="md5:" + "0" * 32,
        params_hash="sha256:" + "0" * 64, image=f"fraud-detector:{VERSION}",
        threshold=subject.threshold, threshold_policy="fixed", metrics={},
        trained_at="1970-01-01T00:00:00+00:00", mlgitops_version="0.1.0",
    ).model_dump(mode="json")  # fmt: skip
    # The service's monitoring counters need the score reference, as the package stage ships it.
    from mlgitops.serving.layout import SCORE_REFERENCE_FILE

    reference = REPO / "artifacts/monitoring/score_reference.json"
    extra = {SCORE_REFERENCE_FILE: reference} if subject.source == "pipeline" else None
    tag = save_model(
        name="fraud-detector", version=VERSION, model_file=subject.model_file,
        profile_file=subject.profile_file, schema_file=subject.schema_file,
        model_card_file=subject.model_card_file, metadata=release, extra_files=extra,
    )  # fmt: skip
    requirements = pinned_requirements(REPO / "requirements.lock")
    return build_bento(
        bento_name="fraud-detector", version=VERSION, model_tag=tag, release=release,
        requirements=requirements,
    )  # fmt: skip


def max_score_difference(a: LoadResult, b: LoadResult) -> tuple[float, int]:
    """Largest score difference over the payloads both servers answered, and how many."""
    worst, compared = 0.0, 0
    for index in a.bodies.keys() & b.bodies.keys():
        sx = json.loads(a.bodies[index])["predictions"][0]["score"]
        sy = json.loads(b.bodies[index])["predictions"][0]["score"]
        worst = max(worst, abs(sx - sy))
        compared += 1
    return worst, compared


def measure(ports: dict[str, int], payloads: list[bytes], args: argparse.Namespace) -> Any:
    """Alternate between the servers in short rounds, so a change in machine load (other jobs on
    the host) hits all alike; samples are pooled over the rounds."""
    names = list(ports)
    for name in names:
        run_load("closed", ports[name], payloads, conns=4, duration=2.0)  # warm-up
    slice_ = args.duration / args.rounds
    peak: dict[str, LoadResult] = {}
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            result = run_load("closed", ports[name], payloads, conns=args.conns, duration=slice_)
            peak[name] = peak[name].merge(result) if name in peak else result
    # Latency at a fixed rate: half of FastAPI + ONNX Runtime's maximum by default, the same for
    # ours and it; a server that cannot sustain twice that is measured at half its own maximum.
    rps = {name: peak[name].count / peak[name].elapsed for name in names}
    rate = args.rate or max(10.0, 0.5 * rps[RATE_FROM])
    rates = {name: min(rate, max(10.0, 0.5 * rps[name])) for name in names}
    fixed: dict[str, LoadResult] = {}
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            result = run_load("open", ports[name], payloads, rate=rates[name], duration=slice_)
            fixed[name] = fixed[name].merge(result) if name in fixed else result
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        out[name] = {
            "p50_ms": fixed[name].quantile(0.50),
            "p99_ms": fixed[name].quantile(0.99),
            "rate": rates[name],
            "rps": rps[name],
            "peak_p99_ms": peak[name].quantile(0.99),
            "5xx": fixed[name].errors_5xx + peak[name].errors_5xx,
            "fixed": fixed[name],
        }
        print(
            f"{name:15s} p50 {out[name]['p50_ms']:.3f} ms  p99 {out[name]['p99_ms']:.3f} ms at "
            f"{rates[name]:.0f} rps;  max {out[name]['rps']:.0f} rps (p99 "
            f"{out[name]['peak_p99_ms']:.2f} ms, {args.conns} connections);  statuses "
            f"{fixed[name].statuses} / {peak[name].statuses}",
            flush=True,
        )
    return out, rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    base = sub.add_parser("baseline-server")
    base.add_argument("--model", required=True)
    base.add_argument("--threshold", type=float, required=True)
    base.add_argument("--port", type=int, required=True)
    fast = sub.add_parser("fastapi-onnx-server")
    fast.add_argument("--onnx", required=True)
    fast.add_argument("--profile", required=True)
    fast.add_argument("--threshold", type=float, required=True)
    fast.add_argument("--port", type=int, required=True)
    floor_cmd = sub.add_parser("floor-server")
    floor_cmd.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--duration", type=float, default=12.0, help="seconds per server and measurement"
    )
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per measurement")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="fixed rate for latency (default: half of FastAPI + ONNX Runtime's maximum)",
    )
    parser.add_argument("--conns", type=int, default=16, help="connections for max throughput")
    parser.add_argument("--payloads", type=int, default=2000)
    parser.add_argument(
        "--family-rows", type=int, default=20000, help="generated rows the families train on"
    )
    parser.add_argument(
        "--fast-path-only",
        action="store_true",
        help="only the in-process fast path of the other model families (no servers)",
    )
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help=f"which of {','.join(SERVERS)} to run"
    )
    args = parser.parse_args(argv)
    if args.command == "baseline-server":
        run_baseline_server(args.model, args.threshold, args.port)
        return 0
    if args.command == "fastapi-onnx-server":
        _uvicorn(fastapi_onnx_app(args.onnx, args.profile, args.threshold), args.port)
        return 0
    if args.command == "floor-server":
        _uvicorn(floor_app(), args.port)
        return 0
    if args.fast_path_only:
        families = family_fast_paths(args.family_rows, 3000)
        print_families(families)
        print(key_values({**families, "load_average": os.getloadavg()[0]}))
        return 0
    if shutil.which("taskset") is None or len(os.sched_getaffinity(0)) < 2:
        print("needs taskset and two CPUs", file=sys.stderr)
        return 2
    wanted = [name for name in SERVERS if name in args.servers.split(",")]
    if "ours" not in wanted or RATE_FROM not in wanted:
        print(f"--servers must include ours and {RATE_FROM}", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="mlgitops-bench-") as tmp:
        work = Path(tmp)
        subject = pick_model(work)
        home = work / "bentoml"
        bento_tag = package(subject, home)
        from mlgitops.profile import load_profile

        payloads = make_payloads(load_profile(subject.profile_file), args.payloads)
        print(f"model: {subject.source} ({subject.model_file}); bento {bento_tag}", flush=True)

        floor = in_process_floor(subject, payloads, 3000)
        print(
            f"in-process: pipeline.predict_proba p50 {floor['pipeline_p50_ms']:.3f} ms; "
            f"validate+compiled ({floor['runtime']}) p50 {floor['compiled_p50_ms']:.3f} ms; "
            f"validate+exported model.onnx p50 {floor['exported_p50_ms']:.3f} ms; "
            f"monitoring counters p50 {floor['counters_p50_ms']:.4f} ms",
            flush=True,
        )
        families = family_fast_paths(args.family_rows, 3000)
        print_families(families)
        (work / "default_service.py").write_text(
            BENTOML_DEFAULT_SERVICE.format(
                model_file=str(subject.model_file), threshold=subject.threshold
            )
        )
        ports = {name: free_port() for name in wanted}
        env = base_env(home)
        env.update(
            MLGITOPS_PREDICTION_LOG=str(work / "predictions.jsonl"),
            MLGITOPS_FEEDBACK_LOG=str(work / "feedback.jsonl"),
        )
        me = [sys.executable, str(Path(__file__).resolve())]
        # The same service with its HTTP limits and length caps off (issue 19): their cost.
        unlimited_env = {**env, "MLGITOPS_LIMITS": "false"}
        unlimited_env.update(
            MLGITOPS_PREDICTION_LOG=str(work / "predictions-unlimited.jsonl"),
            MLGITOPS_FEEDBACK_LOG=str(work / "feedback-unlimited.jsonl"),
        )
        commands = {
            "ours": (
                [sys.executable, "-m", "bentoml", "serve", bento_tag, "--host", "127.0.0.1",
                 "--port", str(ports.get("ours"))], env, "/readyz",
            ),
            "ours_unlimited": (
                [sys.executable, "-m", "bentoml", "serve", bento_tag, "--host", "127.0.0.1",
                 "--port", str(ports.get("ours_unlimited"))], unlimited_env, "/readyz",
            ),
            "fastapi_onnx": (
                [*me, "fastapi-onnx-server", "--onnx", str(subject.onnx_file),
                 "--profile", str(subject.profile_file), "--threshold", str(subject.threshold),
                 "--port", str(ports.get("fastapi_onnx"))], base_env(home), "/readyz",
            ),
            "bentoml_default": (
                [sys.executable, "-m", "bentoml", "serve", "default_service:DefaultService",
                 "--working-dir", str(work), "--host", "127.0.0.1",
                 "--port", str(ports.get("bentoml_default"))], base_env(home), "/readyz",
            ),
            "floor": (
                [*me, "floor-server", "--port", str(ports.get("floor"))], base_env(home),
                "/readyz",
            ),
            "fastapi_joblib": (
                [*me, "baseline-server", "--model", str(subject.model_file),
                 "--threshold", str(subject.threshold), "--port", str(ports.get("fastapi_joblib"))],
                base_env(home), "/readyz",
            ),
        }  # fmt: skip
        # Every server on core 0; only one is under load at any time.
        with ExitStack() as stack:
            for name in wanted:
                cmd, server_env, ready = commands[name]
                stack.enter_context(server(cmd, server_env, ports[name], ready))
            results, rate = measure({name: ports[name] for name in wanted}, payloads, args)
        ours, onnx_base = results["ours"], results[RATE_FROM]
        difference, compared = max_score_difference(ours["fixed"], onnx_base["fixed"])
    figures: dict[str, Any] = {
        "throughput_vs_fastapi_onnx": ours["rps"] / onnx_base["rps"],
        "p99_vs_fastapi_onnx": ours["p99_ms"] / onnx_base["p99_ms"],
        "p50_vs_fastapi_onnx": ours["p50_ms"] / onnx_base["p50_ms"],
    }
    for name in ("floor", "bentoml_default", "fastapi_joblib"):
        if name in results:
            figures[f"throughput_vs_{name}"] = ours["rps"] / results[name]["rps"]
    if "ours_unlimited" in results:
        # What the limits cost: ours with them (the default) against ours without, same run.
        unlimited = results["ours_unlimited"]
        figures["limits_throughput_ratio"] = ours["rps"] / unlimited["rps"]
        figures["limits_p50_ratio"] = ours["p50_ms"] / unlimited["p50_ms"]
        figures["limits_p99_ratio"] = ours["p99_ms"] / unlimited["p99_ms"]
    for name in wanted:
        figures[f"{name}_rps"] = results[name]["rps"]
        figures[f"{name}_p50_ms"] = results[name]["p50_ms"]
        figures[f"{name}_p99_ms"] = results[name]["p99_ms"]
        figures[f"{name}_5xx"] = results[name]["5xx"]
    figures.update(
        {
            "rate_rps": rate,
            "floor_pipeline_p50_ms": floor["pipeline_p50_ms"],
            "floor_compiled_p50_ms": floor["compiled_p50_ms"],
            "floor_exported_p50_ms": floor["exported_p50_ms"],
            # The release model's compiled path against its pipeline, in process.
            "fast_path_gain": floor["pipeline_p50_ms"] / floor["compiled_p50_ms"],
            **families,
            "counters_p50_ms": floor["counters_p50_ms"],
            # The counters' share of one request's time at our maximum throughput (one core).
            "counters_share_of_request": floor["counters_p50_ms"] * ours["rps"] / 1000.0,
            "max_score_diff_vs_fastapi_onnx": difference,
            "scores_compared": compared,
            "load_average": os.getloadavg()[0],
        }
    )
    print(key_values(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())

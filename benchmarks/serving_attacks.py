"""The security review's attacks on the HTTP layer (issue 19) against our service, at the review's
scale, with the limits on (the defaults) and off (MLGITOPS_LIMITS=false) in the same run.

    .venv/bin/python benchmarks/serving_attacks.py [--modes on,off] [--attacks ...]

Each attack runs against a fresh server (so one attack's leftovers do not count against the next):
the worker's resident memory before, at its peak during the attack and after, what each attacking
connection got, and how many kubelet-style probes of /livez and /readyz (a new connection each, a
1 s timeout, every 0.5 s) went unanswered. The base pod's memory limit is 1 GiB
(k8s/base/deployment.yaml). The model is the pipeline's when artifacts/ has it, else a dev model
(benchmarks/serving.py `pick_model`). The last line holds the figures as key=value pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from serving import base_env, package, pick_model, server  # noqa: E402

from tests.support import attacks  # noqa: E402
from tests.support.ports import free_port  # noqa: E402

POD_LIMIT = 2**30
MIB = 2**20
# The largest body /predict reads at max_batch_size 1000 before the limits (main): 4,161,536 bytes.
BODY = 65536 + 1000 * 4096


def _attack(name: str, host: str, port: int, quick: bool) -> Any:
    scale = 0.1 if quick else 1.0
    if name == "slow_bodies":  # 300 connections each holding a 4 MB body minus 10 bytes
        return attacks.slow_bodies(host, port, int(300 * scale), BODY, hold=45)
    if name == "unfinished_headers":  # 100 connections each sending 8 MB of one header
        return attacks.unfinished_headers(host, port, int(100 * scale), 8 * MIB, hold=20)
    if name == "short_bodies":  # a body shorter than its Content-Length
        return attacks.short_bodies(host, port, 20, 1000, 500, hold=60)
    if name == "connection_flood":  # slow-loris: connections that never finish a request line
        return attacks.connection_flood(host, port, int(3000 * scale), hold=30, partial=b"GET /")
    raise ValueError(name)


async def _long_ids(host: str, port: int, quick: bool) -> Any:
    """120 requests of 1000 rows with 3.7 KB ids (each body under the 4 MB allowance)."""
    record = json.loads(Path(_payload_file).read_bytes())["records"][0]
    bodies = attacks.long_id_bodies(record, _id_column, 1000, 3700, 12 if quick else 120)
    return await attacks.post_bodies(host, port, bodies)


_payload_file = ""
_id_column = ""
ATTACKS = ("slow_bodies", "unfinished_headers", "short_bodies", "long_ids", "connection_flood")


def run_one(name: str, bento_tag: str, env: dict[str, str], quick: bool) -> dict[str, Any]:
    port = free_port()
    cmd = [sys.executable, "-m", "bentoml", "serve", bento_tag, "--host", "127.0.0.1"]
    with server([*cmd, "--port", str(port)], env, port, "/readyz") as root:
        workers = attacks.worker_pids(root)
        assert len(workers) == 1, workers
        worker = workers[0]
        time.sleep(1.0)
        before = attacks.process_rss(worker)
        watch = attacks.Watch("127.0.0.1", port, lambda: attacks.process_rss(worker))
        attack = (
            _long_ids("127.0.0.1", port, quick)
            if name == "long_ids"
            else _attack(name, "127.0.0.1", port, quick)
        )
        started = time.monotonic()
        outcome = asyncio.run(attacks.watched(watch, attack, settle=2.0))
        seconds = time.monotonic() - started
        after = attacks.process_rss(worker)
    if isinstance(outcome, attacks.Outcome):
        answers = dict(outcome.counts)
        times = [t for result, t in outcome.results if result not in ("open",)]
        answered_after = max(times) if times else None
    else:
        answers, answered_after = dict(outcome), None
    return {
        "before_mib": before / MIB,
        "peak_mib": watch.peak_rss / MIB,
        "after_mib": after / MIB,
        "failed_livez": len(watch.failed_probes("/livez")),
        "failed_readyz": len(watch.failed_probes("/readyz")),
        "probes": len(watch.probes),
        "answers": answers,
        "last_answer_s": answered_after,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    global _payload_file, _id_column
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="on,off", help="limits on, off, or both (on,off)")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--quick", action="store_true", help="a tenth of the connections")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    wanted = [a for a in ATTACKS if a in args.attacks.split(",")]
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mlgitops-attacks-") as tmp:
        work = Path(tmp)
        subject = pick_model(work)
        home = work / "bentoml"
        bento_tag = package(subject, home)
        from serving import make_payloads

        from mlgitops.schema import load_schema

        _payload_file = str(work / "payload.json")
        Path(_payload_file).write_bytes(make_payloads(subject, 1)[0])
        _id_column = load_schema(subject.schema_file).id_column or "transaction_id"
        print(f"model: {subject.source}; bento {bento_tag}", flush=True)
        for mode in modes:
            env = base_env(home)
            env.update(
                MLGITOPS_PREDICTION_LOG=str(work / f"predictions-{mode}.jsonl"),
                MLGITOPS_FEEDBACK_LOG=str(work / f"feedback-{mode}.jsonl"),
                MLGITOPS_LIMITS="true" if mode == "on" else "false",
            )
            for name in wanted:
                result = run_one(name, bento_tag, env, args.quick)
                print(
                    f"limits {mode:3s} {name:18s} worker RSS {result['before_mib']:.0f} -> peak "
                    f"{result['peak_mib']:.0f} -> after {result['after_mib']:.0f} MiB; "
                    f"unanswered probes livez {result['failed_livez']} readyz "
                    f"{result['failed_readyz']} of {result['probes']}; answers "
                    f"{result['answers']}; last answer after {result['last_answer_s']} s",
                    flush=True,
                )
                key = f"{name}_{mode}"
                figures[f"{key}_peak_mib"] = result["peak_mib"]
                figures[f"{key}_growth_mib"] = result["peak_mib"] - result["before_mib"]
                figures[f"{key}_after_mib"] = result["after_mib"]
                figures[f"{key}_failed_probes"] = result["failed_livez"] + result["failed_readyz"]
                if result["last_answer_s"] is not None:
                    figures[f"{key}_last_answer_s"] = result["last_answer_s"]
                figures[f"{key}_under_pod_limit"] = result["peak_mib"] * MIB < POD_LIMIT
    print(
        " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

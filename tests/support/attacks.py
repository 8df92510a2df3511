"""The HTTP attacks of the security review (issue 19), against a server on 127.0.0.1.

Each attack opens its connections with raw asyncio streams (no client library would send a
header without its end, or a body shorter than its Content-Length), holds them for a bounded
time and closes them; `Watch` meanwhile samples the server's memory and asks /livez and /readyz
as a kubelet does (a new connection per probe, a 1 s timeout). Used at small scale by
tests/mlgitops/serving/test_limits.py and at the review's scale by benchmarks/serving_attacks.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROBE_PATHS = ("/livez", "/readyz")


def process_rss(pid: int) -> int:
    """Resident memory of one process in bytes (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def worker_pids(root: int) -> list[int]:
    """The BentoML API workers (`_bentoml_impl.worker.service`) under the server `root`."""
    from tests.support.processes import descendants

    workers = []
    for pid in descendants(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"_bentoml_impl.worker.service" in cmdline:
            workers.append(pid)
    return workers


@dataclass
class Probe:
    at: float
    path: str
    status: int | None  # None: no answer within the timeout, or the connection failed
    seconds: float


@dataclass
class Watch:
    """Samples `rss()` and probes the health paths every `interval` seconds while running."""

    host: str
    port: int
    rss: Callable[[], int]
    interval: float = 0.5
    timeout: float = 1.0
    samples: list[tuple[float, int]] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        start = time.monotonic()
        while not stop.is_set():
            self.samples.append((time.monotonic() - start, self.rss()))
            for path in PROBE_PATHS:
                self.probes.append(await self._probe(path, time.monotonic() - start))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
        self.samples.append((time.monotonic() - start, self.rss()))

    async def _probe(self, path: str, at: float) -> Probe:
        begin = time.monotonic()
        status = None
        with contextlib.suppress(TimeoutError, OSError, ValueError):
            status = await asyncio.wait_for(_get(self.host, self.port, path), self.timeout)
        return Probe(at, path, status, time.monotonic() - begin)

    @property
    def peak_rss(self) -> int:
        return max(rss for _, rss in self.samples)

    def failed_probes(self, path: str | None = None) -> list[Probe]:
        return [p for p in self.probes if p.status != 200 and path in (None, p.path)]


async def _get(host: str, port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        line = await reader.readline()
        return int(line.split()[1])
    finally:
        writer.close()


@dataclass
class Outcome:
    """What each attacking connection got: a status, "closed" (no answer) or "open" (still
    unanswered when the attack let go), and when, in seconds since it sent its last byte."""

    results: list[tuple[str, float]] = field(default_factory=list)
    # The head of each answer (status line and headers, lower-cased), when one came.
    heads: list[bytes] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        return Counter(result for result, _ in self.results)

    def seconds(self, result: str) -> list[float]:
        return [t for r, t in self.results if r == result]


async def _await_answer(
    reader: asyncio.StreamReader, hold: float, since: float, heads: list[bytes]
) -> tuple[str, float]:
    """The status the server answers on this connection, "closed" if it closes it without one,
    "open" if neither happens within `hold` seconds; the answer's head goes to `heads`."""
    try:
        line = await asyncio.wait_for(reader.readline(), hold)
    except TimeoutError:
        return "open", time.monotonic() - since
    except OSError:
        return "closed", time.monotonic() - since
    if not line:
        return "closed", time.monotonic() - since
    answered = time.monotonic() - since
    try:
        status = line.split()[1].decode()
    except (IndexError, UnicodeDecodeError):
        return "garbled", answered
    head = [line]
    with contextlib.suppress(TimeoutError, OSError):
        while line not in (b"\r\n", b""):
            line = await asyncio.wait_for(reader.readline(), 1.0)
            head.append(line)
    heads.append(b"".join(head).lower())
    return status, answered


async def _connect(host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(host, port, limit=2**20)


async def _attack(
    host: str,
    port: int,
    count: int,
    hold: float,
    send: Callable[[asyncio.StreamWriter], Any],
    concurrency: int = 200,
) -> Outcome:
    """`count` connections, each sending what `send` writes and then waiting for an answer
    for at most `hold` seconds; all held at the same time."""
    outcome = Outcome()
    gate = asyncio.Semaphore(concurrency)  # connections being set up at once, not held

    async def one() -> None:
        wait = hold
        try:
            async with gate:
                reader, writer = await _connect(host, port)
                sent = time.monotonic()
                try:
                    await send(writer)
                    sent = time.monotonic()
                except OSError:  # the server answered and closed before taking it all
                    wait = min(hold, 1.0)
            result = await _await_answer(reader, wait, sent, outcome.heads)
            outcome.results.append(result)
            writer.close()
        except OSError:
            outcome.results.append(("refused", 0.0))

    await asyncio.gather(*(one() for _ in range(count)))
    return outcome


def predict_head(length: int, extra: str = "") -> bytes:
    return (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


async def slow_bodies(
    host: str, port: int, count: int, body_bytes: int, hold: float, missing: int = 10
) -> Outcome:
    """Each connection declares `body_bytes` and sends all but the last `missing` of them."""
    body = b'{"records": [' + b" " * (body_bytes - 13)

    async def send(writer: asyncio.StreamWriter) -> None:
        writer.write(predict_head(body_bytes) + body[: body_bytes - missing])
        await writer.drain()

    return await _attack(host, port, count, hold, send)


async def unfinished_headers(
    host: str, port: int, count: int, header_bytes: int, hold: float
) -> Outcome:
    """Each connection sends a request line and one header of `header_bytes` without its end."""
    chunk = b"a" * 65536

    async def send(writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /metadata HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: ")
        left = header_bytes
        while left > 0:
            writer.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)
            await writer.drain()

    return await _attack(host, port, count, hold, send)


async def short_bodies(
    host: str, port: int, count: int, declared: int, sent: int, hold: float
) -> Outcome:
    """Each connection declares `declared` body bytes, sends `sent` of them and waits."""

    async def send(writer: asyncio.StreamWriter) -> None:
        writer.write(predict_head(declared) + b"{" * sent)
        await writer.drain()

    return await _attack(host, port, count, hold, send)


async def connection_flood(
    host: str, port: int, count: int, hold: float, partial: bytes = b"GET /livez HTTP/1.1\r\n"
) -> Outcome:
    """Each connection sends the start of a request (`partial`, maybe nothing) and stops."""

    async def send(writer: asyncio.StreamWriter) -> None:
        if partial:
            writer.write(partial)
            await writer.drain()

    return await _attack(host, port, count, hold, send, concurrency=500)


def long_id_bodies(
    record: dict[str, Any], id_column: str, rows: int, id_length: int, requests: int
):
    """`requests` bodies of `rows` copies of `record`, each row with its own id of `id_length`
    characters (all distinct, as the review's ids were)."""
    bodies = []
    for r in range(requests):
        records = []
        for i in range(rows):
            tag = f"{r}-{i}-"
            records.append({**record, id_column: tag + "x" * (id_length - len(tag))})
        bodies.append(json.dumps({"records": records}).encode())
    return bodies


async def post_bodies(
    host: str, port: int, bodies: list[bytes], connections: int = 4
) -> Counter[str]:
    """POST each body to /predict (keep-alive, `connections` at a time); the statuses."""
    statuses: Counter[str] = Counter()
    queue = list(reversed(bodies))

    async def worker() -> None:
        reader = writer = None
        while queue:
            body = queue.pop()
            if writer is None:
                reader, writer = await _connect(host, port)
            assert reader is not None
            writer.write(predict_head(len(body)) + body)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            statuses[head.split()[1].decode()] += 1
            length = 0
            close = False
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
                if name.lower() == b"connection" and value.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
            if close:
                writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return statuses


def _watch_process(watch: Watch, stop: Any, results: Any) -> None:
    async def run() -> None:
        done = asyncio.Event()

        async def wait_stop() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
            done.set()

        await asyncio.gather(watch.run(done), wait_stop())

    asyncio.run(run())
    results.send((watch.samples, watch.probes))


async def watched(watch: Watch, attack: Any, settle: float = 1.0) -> Any:
    """Run `attack` (a coroutine) while `watch` samples and probes; then `settle` seconds more.

    The watch runs in a process of its own: in the attacker's event loop, busy pushing
    gigabytes, a probe would time out for the attacker's sake, not the server's."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    stop = context.Event()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_watch_process, args=(watch, stop, sender), daemon=True)
    process.start()
    try:
        return await attack
    finally:
        await asyncio.sleep(settle)
        stop.set()
        watch.samples, watch.probes = receiver.recv()
        process.join(10)

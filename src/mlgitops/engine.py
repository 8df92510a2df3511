"""Where Dask work runs: in this process, on a LocalCluster, or on an existing scheduler.

Stages build Dask collections and wrap their work in `running(params.engine)`; inside it,
`dask.compute` (or `compute` below, which also shows progress on a terminal) runs on the engine
chosen. No result depends on the engine: the code that builds the collections merges partitions
exactly, so 1 thread and 8 workers give the same bytes. The engine is therefore chosen by params
or the environment (MLGITOPS_ENGINE, MLGITOPS_DASK_SCHEDULER) and never recorded in an output.

Failures: a task that raises stops the work with its own error (the dataset reader names the file;
`named_partitions` names the partition of a per-partition function); a task whose worker died is
rerun by Dask up to engine.allowed_failures times, then stops the work with one `PartitionError`
line naming the partition.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from mlgitops.config import SCHEDULER_ENV, EngineConfig, scheduler_address
from mlgitops.errors import EngineError, MlgitopsError, PartitionError

if TYPE_CHECKING:
    from distributed import Client

# How long connecting to a scheduler or starting a LocalCluster may take before it is an error.
CONNECT_TIMEOUT_S = 20


@dataclass(frozen=True)
class Running:
    """The engine in use: its effective settings (after MLGITOPS_ENGINE) and, for a cluster or a
    scheduler, the distributed client (None in-process)."""

    engine: EngineConfig
    client: Client | None
    address: str | None = None

    def describe(self) -> str:
        if self.engine.kind == "local":
            threads = self.engine.threads
            return "in-process, synchronous" if threads == 1 else f"in-process, {threads} threads"
        if self.engine.kind == "cluster":
            return f"LocalCluster of {self.engine.workers} worker processes at {self.address}"
        return f"scheduler at {self.address}"


_CURRENT: ContextVar[Running | None] = ContextVar("mlgitops_engine", default=None)


def current() -> Running | None:
    """The engine of the innermost `running` block, if any."""
    return _CURRENT.get()


@contextmanager
def running(
    engine: EngineConfig,
    environ: Mapping[str, str] | None = None,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> Iterator[Running]:
    """Run the Dask work of the block on `engine` (as MLGITOPS_ENGINE overrides it); tear the
    cluster or connection down on exit. A worker death beyond engine.allowed_failures leaves
    the block as one PartitionError naming the partition."""
    import dask

    effective = engine.with_environment(environ)
    with ExitStack() as stack:
        if effective.kind == "local":
            if effective.threads == 1:
                stack.enter_context(dask.config.set(scheduler="sync"))
            else:
                stack.enter_context(
                    dask.config.set(scheduler="threads", num_workers=effective.threads)
                )
            state = Running(effective, None)
        else:
            state = _distributed(effective, environ, stack, connect_timeout_s)
        token = _CURRENT.set(state)
        try:
            with _naming_dead_workers():
                yield state
        finally:
            _CURRENT.reset(token)


def _distributed(
    engine: EngineConfig,
    environ: Mapping[str, str] | None,
    stack: ExitStack,
    connect_timeout_s: float,
) -> Running:
    import dask
    from distributed import Client, LocalCluster

    # Set before the scheduler starts: it reads allowed-failures when it is created.
    stack.enter_context(
        dask.config.set({"distributed.scheduler.allowed-failures": engine.allowed_failures})
    )
    if engine.kind == "cluster":
        try:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=engine.workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    memory_limit=engine.worker_memory or "auto",
                    # Our one line says what failed; the scheduler's own log would repeat it.
                    silence_logs=logging.CRITICAL,
                )
            )
        except (OSError, TimeoutError, RuntimeError) as error:
            raise EngineError(f"engine cluster: the LocalCluster did not start: {error}") from None
        client = stack.enter_context(Client(cluster, set_as_default=True))
        return Running(engine, client, cluster.scheduler_address)
    address = scheduler_address(environ)
    try:
        client = stack.enter_context(
            Client(address, timeout=f"{connect_timeout_s}s", set_as_default=True)
        )
    except (OSError, TimeoutError, ValueError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise EngineError(f"{SCHEDULER_ENV}={address}: scheduler unreachable: {detail}") from None
    return Running(engine, client, address)


def partition_of(key: object) -> str:
    """A task key as words: Dask keys are (name, partition index) for partitioned work."""
    if isinstance(key, tuple) and len(key) >= 2 and isinstance(key[1], int):
        name = str(key[0]).rsplit("-", 1)[0]
        return f"partition {key[1]} of {name}"
    return f"task {key}"


@contextmanager
def _naming_dead_workers() -> Iterator[None]:
    """Dask's KilledWorker (a task whose workers kept dying) as one PartitionError line."""
    try:
        yield
    except MlgitopsError:
        raise
    except Exception as error:
        killed = _killed_worker(error)
        if killed is None:
            raise
        raise killed from None


def _killed_worker(error: BaseException) -> PartitionError | None:
    try:
        from distributed import KilledWorker
    except ImportError:  # pragma: no cover - distributed is locked with dask
        return None
    if not isinstance(error, KilledWorker):
        return None
    task, worker, allowed = [*error.args, None, None, None][:3]
    where = getattr(worker, "address", worker)
    tries = f"{allowed + 1} times" if isinstance(allowed, int) else "repeatedly"
    return PartitionError(
        f"{partition_of(task)}: its worker died {tries} (last {where}); Dask gave up on it"
    )


def named_partitions(func: Callable[..., Any], what: str) -> Callable[..., Any]:
    """`func` for `map_partitions` whose failure is one PartitionError line naming `what` and
    the partition's index (mlgitops errors, which name their input already, pass unchanged)."""

    def per_partition(part: Any, *args: Any, partition_info: dict | None = None, **kwargs: Any):
        try:
            return func(part, *args, **kwargs)
        except MlgitopsError:
            raise
        except Exception as error:
            number = partition_info.get("number", "?") if partition_info else "?"
            cause = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise PartitionError(
                f"{what}: partition {number}: {type(error).__name__}: {cause}".rstrip(": ")
            ) from None

    # No functools.wraps: Dask looks for the partition_info keyword in the signature, and
    # wraps would make it see func's.
    per_partition.__name__ = getattr(func, "__name__", "per_partition")
    return per_partition


def compute(*collections: Any, label: str = "dask", stream: TextIO | None = None) -> tuple:
    """`dask.compute(*collections)` on the current engine, with a progress line (tasks done of
    all) on a terminal and nothing in CI or a log; a dead worker becomes a PartitionError."""
    import dask

    from mlgitops.progress import Progress, interactive

    stream = sys.stderr if stream is None else stream
    state = current()
    with _naming_dead_workers():
        if not interactive(stream):
            return dask.compute(*collections)
        if state is not None and state.client is not None:
            return _compute_distributed(state.client, collections, label, stream)
        with _LocalProgress(Progress(label, 0, stream)):
            return dask.compute(*collections)


def _compute_distributed(client: Client, collections: tuple, label: str, stream: TextIO) -> tuple:
    from distributed import futures_of
    from distributed.diagnostics.progressbar import TextProgressBar

    from mlgitops.progress import Progress

    futures = client.compute(list(collections))
    status = Progress(label, 0, stream)

    class Bar(TextProgressBar):
        def _draw_bar(self, remaining: int, all: int, **kwargs: Any) -> None:
            status.total = all
            status.update(all - remaining, "tasks")

        def _draw_stop(self, **kwargs: Any) -> None:
            status.close()

    try:
        Bar(futures_of(futures), scheduler=client.scheduler.address, interval="500ms")
    finally:
        status.close()
    return tuple(client.gather(futures))


class _LocalProgress:
    """dask.diagnostics callbacks for the in-process schedulers, drawn by mlgitops.progress."""

    def __init__(self, status: Any) -> None:
        from dask.callbacks import Callback

        self.status = status
        owner = self

        class Tracker(Callback):
            def _start_state(self, dsk: Any, state: Any) -> None:
                owner.total = sum(len(state[k]) for k in ("ready", "waiting", "running"))
                owner.done = 0

            def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
                owner.done += 1
                status.total = owner.total
                status.update(owner.done, "tasks")

        self.tracker = Tracker()
        self.total = self.done = 0

    def __enter__(self) -> _LocalProgress:
        self.tracker.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.tracker.__exit__(*exc)
        self.status.close()

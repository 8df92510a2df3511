"""Limits at the HTTP layer of each worker: header size and time, body-read time, idle keep-alive,
connections and requests in flight (README, Serving: "Limits").

BentoML builds each worker's uvicorn `Config` itself (`_bentoml_impl.worker.service`) and passes
none of uvicorn's limits; the API routes bypass its request timeout (`service.DirectRoutes`); and
httptools, the parser uvicorn picks, buffers a header line of any length. So the worker serves
with `LimitedHttpToolsProtocol`, uvicorn's httptools protocol with the limits added where the
bytes arrive, before any request reaches an ASGI app: the header is never buffered past its limit,
and a request refused for overload costs no task. `install` makes it the protocol uvicorn picks
(its "auto" entry); the service calls it in each worker, before BentoML starts uvicorn.

Timeouts are checked by one sweep per worker every `tick` seconds over the open connections,
rather than a timer per request: a timer armed and cancelled per request costs more than the
sweep, and a deadline met a fraction of a second late changes nothing here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mlgitops.config import ServingConfig

logger = logging.getLogger("mlgitops.serving")

# The probes answer whatever the load, so a busy pod is not restarted or taken out for it.
PROBE_PATHS = frozenset({b"/livez", b"/readyz", b"/healthz"})
# A refused connection is read (and what it sends dropped) for at most this long, and at most
# the largest body the API reads (`Limits.linger_bytes`), before it is closed: time for a client
# refused mid-upload to finish sending and read the answer, no more.
LINGER = 2.0
# Bytes per record allowed in a /predict body, on top of a fixed allowance; more is refused unread.
BYTES_PER_RECORD = 4096
BODY_ALLOWANCE = 65536


def max_body_bytes(max_batch_size: int) -> int:
    """The largest /predict body read at this batch size (4,161,536 bytes at 1,000)."""
    return BODY_ALLOWANCE + max_batch_size * BYTES_PER_RECORD


# Bytes of a head besides the URL, names and values the parser hands over: the method, version,
# spaces and CRLFs of the request line (at least), ": " and CRLF per header, the closing CRLF.
_REQUEST_LINE = 16
_HEADER_LINE = 4


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    keepalive_timeout: float
    max_connections: int
    max_in_flight: int
    retry_after: int
    linger_bytes: int

    @classmethod
    def from_settings(cls, settings: ServingConfig) -> Limits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            keepalive_timeout=settings.keepalive_timeout_seconds,
            max_connections=settings.max_connections,
            max_in_flight=settings.max_in_flight,
            retry_after=settings.retry_after_seconds,
            linger_bytes=max_body_bytes(settings.max_batch_size),
        )

    @property
    def tick(self) -> float:
        """How often the sweep looks: a quarter of the shortest timeout, at most a second."""
        return min(1.0, max(0.05, min(self.header_timeout, self.body_timeout) / 4))


def refusal(status: int, code: str, message: str, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 response in the API's error format that closes the connection."""
    body = orjson.dumps({"error": code, "message": message, "detail": []})
    head = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


Refused = Callable[[str], None]


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits of `limits` (set by `install`).

    - A head (request line and headers) larger than `max_header_bytes` is answered 431 and the
      connection closed, whether it is complete or still arriving.
    - A head not complete `header_timeout` seconds after the connection opened or the request
      began is answered 408 (closed silently if nothing came at all).
    - A body not complete `body_timeout` seconds after its head is answered 408 (if no answer
      started) and the connection closed; the handler waiting for it sees a disconnect.
    - Idle keep-alive connections close after `keepalive_timeout` seconds (uvicorn's own timer).
    - Past `max_connections` open connections, a new one closes the longest-idle one (no request
      in progress: idle keep-alive, or a head still arriving), so a flood of idle connections
      cannot lock out the probes; if every one is busy, the new one is answered 503.
    - Past `max_in_flight` requests being handled, a request is answered 503 with Retry-After,
      except the probes.
    Every refusal closes the connection, so nothing more is read from it.
    """

    limits: ClassVar[Limits]
    on_refused: ClassVar[Refused | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.keepalive_timeout  # type: ignore[assignment]
        # When the current head began (the connection opened, or its first byte came); None
        # while its body is read, its answer written, or between requests.
        self.head_since: float | None = None
        self.head_bytes = 0
        self.body_since: float | None = None
        self.refused = False
        self.linger_since: float | None = None
        self.lingered = 0
        # This worker's connections with no request in progress, longest idle first.
        self.idle = _IDLE.setdefault(id(self.server_state), {})
        self.lingering = _LINGERING.setdefault(id(self.server_state), set())

    # --- connections

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_since = time.monotonic()
        _ensure_sweep(self.loop, self.server_state, self.limits)
        if len(self.connections) > self.limits.max_connections:
            victim = self._longest_idle()
            if victim is not None:
                victim.transport.close()
                victim.idle.pop(victim, None)
                _count("idle_evicted", answered=False)
            else:
                message = f"more than {self.limits.max_connections} connections; retry later"
                self._refuse(503, "overloaded", message, self.limits.retry_after)
                return
        self.idle[self] = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.idle.pop(self, None)
        self.lingering.discard(self)
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # The connection passes to another protocol object, which uvicorn counts from now on.
        self.idle.pop(self, None)
        self.head_since = self.body_since = None
        super().handle_websocket_upgrade()

    def _longest_idle(self) -> LimitedHttpToolsProtocol | None:
        for connection in self.idle:
            if connection is not self and not connection.busy():
                return connection
        return None

    def busy(self) -> bool:
        cycle = self.cycle
        return (cycle is not None and not cycle.response_complete) or bool(self.pipeline)

    # --- bytes in

    def data_received(self, data: bytes) -> None:
        if self.refused:  # lingering after a refusal: what the client still sends is dropped
            self.lingered += len(data)
            if self.lingered > self.limits.linger_bytes:
                self.transport.close()
            return
        if self.body_since is None:
            self.head_bytes += len(data)
        super().data_received(data)
        if (
            self.body_since is None
            and self.head_bytes > self.limits.max_header_bytes
            and self.head_since is not None
            and not self.refused
        ):
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.head_since is None:
            self.head_since = time.monotonic()

    def on_headers_complete(self) -> None:
        limits = self.limits
        size = len(self.url) + _REQUEST_LINE
        for name, value in self.headers:
            size += len(name) + len(value) + _HEADER_LINE
        if size > limits.max_header_bytes:
            self._refuse_head()
            return
        if len(self.tasks) >= limits.max_in_flight and (
            self.url.split(b"?", 1)[0] not in PROBE_PATHS
        ):
            message = f"more than {limits.max_in_flight} requests in progress; retry later"
            self._refuse(503, "overloaded", message, limits.retry_after)
            return
        self.head_since = None
        self.body_since = time.monotonic()
        self.idle.pop(self, None)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        self.body_since = None
        self.head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.refused and not self.transport.is_closing():
            self.idle[self] = None

    # --- refusing

    def _refuse_head(self) -> None:
        message = f"request head larger than {self.limits.max_header_bytes} bytes"
        self._refuse(431, "header_too_large", message)

    def _refuse(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: int | None = None,
        in_body: bool = False,
    ) -> None:
        """Answer `status` and close; count it by `code`. `in_body`: the request being read has
        a handler (`self.cycle`), else it is refused before one started."""
        self.refused = True
        self.idle.pop(self, None)
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if in_body:
            answer = cycle is not None and not cycle.response_started
            if cycle is not None and not cycle.response_complete:
                # Its handler, waiting for the rest of the body, sees a disconnect; its answer
                # (if any) is dropped.
                cycle.disconnected = True
                cycle.message_event.set()
        else:
            # An earlier request's answer still being written (pipelining): close only.
            answer = not self.busy()
        if answer:
            self.transport.write(refusal(status, code, message, retry_after))
        _count(code)
        if len(self.lingering) >= self.limits.max_in_flight or not self.transport.can_write_eof():
            # As many lingering as requests in progress at most: a flood of refused clients
            # must not keep the worker reading what they send. These are closed at once.
            self.transport.close()
            return
        self.lingering.add(self)
        # Lingering close (as nginx's lingering_close): end our side after the answer and drop
        # what the client is still sending (LINGER, `linger_bytes`). Closing at once with its
        # bytes unread would reset the connection, and the client could lose the answer (the
        # 503's Retry-After, the 431) before reading it.
        self.transport.write_eof()
        self.linger_since = time.monotonic()
        self.flow.resume_reading()

    def sweep(self, now: float) -> None:
        """Close this connection if its head or its body is overdue, or its lingering is over."""
        limits = self.limits
        if self.linger_since is not None:
            if now - self.linger_since > LINGER:
                self.transport.close()
        elif self.head_since is not None and now - self.head_since > limits.header_timeout:
            if self.busy():  # the next request's head, waiting behind this one's answer
                return
            if self.head_bytes:
                message = f"request head not complete within {limits.header_timeout:g} s"
                self._refuse(408, "request_timeout", message)
            else:  # nothing sent at all: nothing to answer
                self.refused = True
                self.transport.close()
                _count("idle_timeout", answered=False)
        elif self.body_since is not None and now - self.body_since > limits.body_timeout:
            message = f"request body not complete within {limits.body_timeout:g} s"
            self._refuse(408, "request_timeout", message, in_body=True)


# Per worker (uvicorn server state): its idle connections, its lingering ones, and whether its
# sweep runs.
_IDLE: dict[int, dict[LimitedHttpToolsProtocol, None]] = {}
_LINGERING: dict[int, set[LimitedHttpToolsProtocol]] = {}
_SWEEPING: set[int] = set()
# Refusals since the last log line, by code; logged at most every LOG_EVERY seconds.
_REFUSED: dict[str, int] = {}
LOG_EVERY = 10.0


def _count(code: str, answered: bool = True) -> None:
    """Count a refusal for the log; one that answered a request also in `on_refused`."""
    _REFUSED[code] = _REFUSED.get(code, 0) + 1
    callback = LimitedHttpToolsProtocol.on_refused
    if answered and callback is not None:
        callback(code)


def _ensure_sweep(loop: asyncio.AbstractEventLoop, server_state: Any, limits: Limits) -> None:
    """One sweep per worker, started with its first connection: timeouts, and a log line of
    what was refused (one per LOG_EVERY seconds at most, however many)."""
    if id(server_state) in _SWEEPING:
        return
    _SWEEPING.add(id(server_state))
    connections = server_state.connections
    logged = time.monotonic()

    def sweep() -> None:
        nonlocal logged
        now = time.monotonic()
        for connection in list(connections):
            if isinstance(connection, LimitedHttpToolsProtocol):
                connection.sweep(now)
        if _REFUSED and now - logged >= LOG_EVERY:
            counts = ", ".join(f"{code} {n}" for code, n in sorted(_REFUSED.items()))
            logger.warning("limits: refused or closed in the last %.0f s: %s", now - logged, counts)
            _REFUSED.clear()
            logged = now
        loop.call_later(limits.tick, sweep)

    loop.call_later(limits.tick, sweep)


def install(settings: ServingConfig, on_refused: Refused | None = None) -> bool:
    """Make uvicorn serve with `LimitedHttpToolsProtocol` under `settings`' limits (uvicorn reads
    its protocol by name when the server starts), calling `on_refused(code)` for each refusal.
    False, and nothing changed, when `settings.limits` is off."""
    if not settings.limits:
        return False
    import uvicorn.config

    LimitedHttpToolsProtocol.limits = Limits.from_settings(settings)
    LimitedHttpToolsProtocol.on_refused = on_refused
    name = f"{__name__}:{LimitedHttpToolsProtocol.__name__}"
    uvicorn.config.HTTP_PROTOCOLS["auto"] = name
    uvicorn.config.HTTP_PROTOCOLS["httptools"] = name
    return True

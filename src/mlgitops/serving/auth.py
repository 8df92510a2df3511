"""Credentials of the API: bearer tokens and the key that signs request ids, read from files.

In a pod the files are a mounted Secret (k8s/base/deployment.yaml); `mlgitops serve` makes its own
under reports/serve/. A file holds one value a line and every line is accepted (the first line of
a key file signs): a new token or key is added as a line, clients move, the old line is removed.
A file is read when the worker starts and again when it changes (checked at most every
RELOAD_SECONDS: Kubernetes swaps a Secret's files in place when the Secret is updated).

Request ids are `<128 random bits, hex>-<rows>-<HMAC-SHA256 tag, 128 bits, hex>`: unguessable,
and any worker or replica holding the key can tell an id this service issued (and its row count)
from a forged or altered one, without shared state.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlgitops.config import ServingConfig
from mlgitops.errors import ServingError

logger = logging.getLogger("mlgitops.serving")

RELOAD_SECONDS = 5.0
# Shortest token or key accepted: `openssl rand -hex 32` gives 64 characters.
MIN_SECRET_CHARS = 32
_NONCE_BYTES = 16
_TAG_CHARS = 32
REQUEST_ID_PATTERN = "^[0-9a-f]{32}-[1-9][0-9]{0,8}-[0-9a-f]{32}$"
_REQUEST_ID = re.compile(r"([0-9a-f]{32})-([1-9][0-9]{0,8})-([0-9a-f]{32})")
# Visible ASCII: what an HTTP header carries unchanged.
_TOKEN = re.compile(rb"[\x21-\x7e]+")


class SecretFile:
    """The values of a secret file (one a line), re-read when the file changes."""

    def __init__(self, path: str, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.what = what
        self._clock = clock
        self._signature = self._stat()
        self.values = self._read()
        self._checked = clock()

    def _stat(self) -> tuple[int, ...] | None:
        try:
            st = Path(self.path).stat()
        except OSError:
            return None
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def _read(self) -> tuple[bytes, ...]:
        """The file's values; ServingError naming the file and what is wrong with it."""
        try:
            raw = Path(self.path).read_bytes()
        except FileNotFoundError:
            raise ServingError(f"{self.what} {self.path}: file not found") from None
        except OSError as error:
            raise ServingError(f"{self.what} {self.path}: cannot read it: {error}") from None
        values = tuple(line.strip() for line in raw.splitlines() if line.strip())
        if not values:
            raise ServingError(f"{self.what} {self.path}: the file is empty")
        for number, value in enumerate(values, 1):
            if _TOKEN.fullmatch(value) is None:
                raise ServingError(
                    f"{self.what} {self.path}: value {number} holds spaces or characters other "
                    "than visible ASCII"
                )
            if len(value) < MIN_SECRET_CHARS:
                raise ServingError(
                    f"{self.what} {self.path}: value {number} is {len(value)} characters; at "
                    f"least {MIN_SECRET_CHARS} are required (e.g. `openssl rand -hex 32`)"
                )
        return values

    def current(self) -> tuple[bytes, ...]:
        """The values, re-read first if the file changed since it was last looked at. A file
        that became unreadable or invalid keeps the values read before (a Secret being swapped
        is briefly absent), and says so in the log."""
        now = self._clock()
        if now - self._checked >= RELOAD_SECONDS:
            self._checked = now
            signature = self._stat()
            if signature is not None and signature != self._signature:
                try:
                    self.values = self._read()
                    self._signature = signature
                    logger.info("%s %s re-read: %d values", self.what, self.path, len(self.values))
                except ServingError as error:
                    logger.error("%s; keeping the values read before", error)
        return self.values


def bearer(header: str | None) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return token.encode("ascii")
    except UnicodeEncodeError:
        return None


def accepted(given: bytes | None, values: tuple[bytes, ...]) -> bool:
    """Whether `given` is one of `values`, in time independent of how much of it matches."""
    if given is None:
        return False
    found = False
    for value in values:
        found |= hmac.compare_digest(given, value)
    return found


class RequestIds:
    """Mints and verifies signed request ids. `keys`: the shared key file; None: a random key of
    this process (ids then verify only in the worker that issued them)."""

    def __init__(self, keys: SecretFile | None) -> None:
        self.keys = keys
        self._own = None if keys is not None else (secrets.token_hex(32).encode(),)

    @property
    def shared(self) -> bool:
        return self.keys is not None

    def _keys(self) -> tuple[bytes, ...]:
        return self._own if self._own is not None else self.keys.current()  # type: ignore[union-attr]

    def mint(self, rows: int) -> str:
        body = f"{secrets.token_hex(_NONCE_BYTES)}-{rows}"
        return f"{body}-{_tag(self._keys()[0], body)}"

    def verify(self, request_id: str) -> int | None:
        """The row count an id issued by this service carries; None for any other string."""
        match = _REQUEST_ID.fullmatch(request_id)
        if match is None:
            return None
        nonce, rows, tag = match.groups()
        body = f"{nonce}-{rows}"
        valid = False
        for key in self._keys():
            valid |= hmac.compare_digest(_tag(key, body), tag)
        return int(rows) if valid else None


def _tag(key: bytes, body: str) -> str:
    return hmac.digest(key, body.encode("ascii"), "sha256").hex()[:_TAG_CHARS]


@dataclass(frozen=True)
class Credentials:
    """What the API checks: the feedback token (None: /feedback refuses every label), the
    predict token (None: reads are open) and the request id signer."""

    feedback: SecretFile | None
    predict: SecretFile | None
    request_ids: RequestIds

    def may_read(self, header: str | None) -> bool:
        return self.predict is None or accepted(bearer(header), self.predict.current())

    def may_write_feedback(self, header: str | None) -> bool:
        return self.feedback is not None and accepted(bearer(header), self.feedback.current())


def load_credentials(settings: ServingConfig) -> Credentials:
    """The credentials the settings name, read now; ServingError for a file named but not
    usable (the worker then never turns ready: it cannot tell clients apart)."""
    feedback = predict = keys = None
    if settings.feedback_token_file:
        feedback = SecretFile(settings.feedback_token_file, "feedback token file")
    if settings.predict_token_file:
        predict = SecretFile(settings.predict_token_file, "predict token file")
    if feedback is not None and predict is not None and set(feedback.values) & set(predict.values):
        raise ServingError(
            f"{feedback.path} and {predict.path} share a token: /feedback needs a credential "
            "of its own, not the one that lets a client predict"
        )
    if settings.request_id_key_file:
        keys = SecretFile(settings.request_id_key_file, "request id key file")
    else:
        logger.warning(
            "no %s: request ids are signed with a key of this worker, and a label is accepted "
            "only by the worker that served its prediction",
            ServingConfig.env_name("request_id_key_file"),
        )
    if feedback is None:
        logger.warning(
            "no %s: /feedback refuses every label (403 feedback_not_configured)",
            ServingConfig.env_name("feedback_token_file"),
        )
    return Credentials(feedback, predict, RequestIds(keys))

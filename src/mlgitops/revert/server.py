"""The Alertmanager webhook receiver behind `mlgitops revert serve`.

POST /alerts with Alertmanager's payload and `Authorization: Bearer <token>`. A firing alert
whose labels match the selector prepares the revert branch (202); the same release again
answers 200 "already prepared", as the branch is named by the release it removes. Resolved or
unmatched alerts are acknowledged (200) and ignored. Git work runs one request at a time, in
a thread, so the event loop keeps answering.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from mlgitops.config import Params
from mlgitops.errors import ConfigError, MlgitopsError, RevertError
from mlgitops.io import atomic_write_text
from mlgitops.revert.alerts import (
    PayloadError,
    describe_selector,
    matches,
    parse_payload,
    selector,
)
from mlgitops.revert.branch import BranchExistsError
from mlgitops.revert.plan import RevertPlan, branch_exists, plan_revert
from mlgitops.revert.prbody import evidence_from_text
from mlgitops.revert.prepare import RevertOutcome, monitor_summary, prepare_revert


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: Path
    base: str
    branch_prefix: str
    selector: dict[str, str]
    token: str
    pr_body_dir: Path
    monitor_summary: Path
    max_request_bytes: int

    @classmethod
    def from_params(cls, params: Params, base: str | None = None, **fields: Any) -> ServerSettings:
        config = params.revert
        return cls(
            base=base or config.base,
            branch_prefix=config.branch_prefix,
            selector=selector(params),
            max_request_bytes=config.max_request_bytes,
            **fields,
        )


def read_token(path: Path) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(f"--token-file {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--token-file {path}: cannot read it: {error}") from None
    if not token:
        raise ConfigError(f"--token-file {path}: the file is empty")
    return token


def authorized(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    # compare_digest: the time taken does not tell how much of a guess was right.
    same = hmac.compare_digest(given.strip().encode(), token.encode())
    return scheme.lower() == "bearer" and same


def _answer(code: int, **body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=code)


def _body_path(settings: ServerSettings, branch: str) -> Path:
    return settings.pr_body_dir / (branch.replace("/", "-") + ".md")


def _prepare(settings: ServerSettings, payload_text: str) -> tuple[int, dict[str, Any]]:
    """(HTTP status, answer) for a payload with at least one matching firing alert."""
    plan: RevertPlan = plan_revert(settings.repo, settings.base, settings.branch_prefix)
    body_path = _body_path(settings, plan.branch)
    if branch_exists(settings.repo, plan.branch):
        return 200, {"status": "already prepared", "branch": plan.branch, "pr_body": str(body_path)}
    # Automation must not undo a rollback: if the release this would restore was itself
    # removed by a revert branch, a human decides.
    undone = f"{settings.branch_prefix}{plan.restored.bento_version}"
    if branch_exists(settings.repo, undone):
        raise RevertError(
            f"reverting {plan.commit.short} would restore {plan.restored.bento_tag}, "
            f"which branch {undone} removed: revert by hand"
        )
    summary = monitor_summary(None, settings.monitor_summary)
    evidence = [evidence_from_text("Alertmanager webhook", payload_text)]
    outcome: RevertOutcome = prepare_revert(
        settings.repo,
        settings.base,
        settings.branch_prefix,
        evidence=evidence,
        summary=summary,
        summary_name=str(settings.monitor_summary),
        write_body=lambda body: atomic_write_text(body_path, body),
        plan=plan,
    )
    atomic_write_text(body_path.with_suffix(".alert.json"), payload_text)
    return 202, {
        "status": "prepared",
        "branch": outcome.plan.branch,
        "reverted_commit": outcome.plan.commit.sha,
        "revert_commit": outcome.branch.revert_commit,
        "removed": outcome.plan.removed.bento_tag,
        "restored": outcome.plan.restored.bento_tag,
        "pr_body": str(body_path),
    }


def create_app(settings: ServerSettings, log: Callable[[str], None] = lambda _: None) -> Starlette:
    """The receiver; `log` gets one line per alert acted on (what was prepared or refused)."""
    lock = asyncio.Lock()

    async def alerts(request: Request) -> JSONResponse:
        if not authorized(request.headers.get("authorization"), settings.token):
            response = _answer(401, error="missing or wrong bearer token (Authorization header)")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response
        limit = settings.max_request_bytes
        too_large = _answer(413, error=f"request body over {limit} bytes")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return too_large
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return too_large
        try:
            payload = parse_payload(bytes(body))
        except PayloadError as error:
            return _answer(error.status, error=str(error))
        firing = [alert for alert in payload.alerts if alert.status == "firing"]
        if not firing:
            return _answer(200, status="ignored", reason="resolved")
        wanted = [alert for alert in firing if matches(alert, settings.selector)]
        if not wanted:
            reason = f"no firing alert matches {describe_selector(settings.selector)}"
            return _answer(200, status="ignored", reason=reason)
        fingerprints = sorted({alert.fingerprint for alert in wanted})
        names = ",".join(sorted({alert.name for alert in wanted}))
        async with lock:
            try:
                text = body.decode(errors="replace")
                code, answer = await run_in_threadpool(_prepare, settings, text)
            except BranchExistsError as error:
                log(f"{names} {','.join(fingerprints)}: {error}")
                return _answer(200, status="already prepared", detail=str(error))
            except MlgitopsError as error:
                log(f"{names} {','.join(fingerprints)}: refused: {error}")
                return _answer(409, error=str(error))
        log(f"{names} {','.join(fingerprints)}: {answer['status']} {answer['branch']}")
        return _answer(code, fingerprints=fingerprints, **answer)

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    return Starlette(
        routes=[
            Route("/alerts", alerts, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )

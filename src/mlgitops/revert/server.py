"""The Alertmanager webhook receiver behind `mlgitops revert serve`.

POST /alerts with Alertmanager's payload and `Authorization: Bearer <token>`. A firing alert
whose labels match the selector and whose `bento_tag` is the release the base branch pins now
prepares the branch restoring the last good release (202); the same release again answers 200
"already prepared", as the branch is named by the release it removes. An alert about another
release, or naming none (a late or replayed alert), is refused with 409: it must never revert
the release that replaced it. Resolved or unmatched alerts are acknowledged (200) and ignored.
Git work runs one request at a time, in a thread, so the event loop keeps answering.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from mlgitops.config import Params
from mlgitops.errors import ConfigError, MlgitopsError, RevertError
from mlgitops.io import atomic_write_text
from mlgitops.model_base import FrozenModel
from mlgitops.monitoring.metric_names import RELEASE_LABEL
from mlgitops.revert.alerts import (
    Alert,
    PayloadError,
    about_release,
    describe_selector,
    matches,
    parse_payload,
    printable,
    selector,
)
from mlgitops.revert.branch import BranchExistsError
from mlgitops.revert.plan import RevertPlan, branch_exists, current_release, plan_revert
from mlgitops.revert.prbody import evidence_from_text
from mlgitops.revert.prepare import RevertOutcome, monitor_summary, prepare_revert


class ServerSettings(FrozenModel):
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


def _not_about(alerts: list[Alert], base: str, current: str) -> str:
    """Why none of `alerts` may revert `current`, the release `base` pins (one line)."""
    first = alerts[0]
    if first.bento_tag is None:
        what = f"carries no {RELEASE_LABEL} label"
    else:
        what = f"is about {first.bento_tag}"
    others = f" (and {len(alerts) - 1} more alerts like it)" if len(alerts) > 1 else ""
    return (
        f"alert {first.name}{others} {what}, not {current}, the release {base} pins now: "
        "not reverting (a late or replayed alert, or one of rules that do not keep the label)"
    )


def _prepare(
    settings: ServerSettings, payload_text: str, alerts: list[Alert]
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, answer) for a payload with at least one matching firing alert; only an
    alert about the release the base pins now may prepare its rollback."""
    _, _, current = current_release(settings.repo, settings.base)
    about = about_release(alerts, current.bento_tag)
    if not about:
        raise RevertError(_not_about(alerts, settings.base, current.bento_tag))
    plan: RevertPlan = plan_revert(settings.repo, settings.base, settings.branch_prefix)
    if plan.removed.bento_tag != current.bento_tag:
        raise RevertError(f"{settings.base} moved to another release meanwhile: alert again")
    fingerprints = sorted({alert.fingerprint for alert in about})
    body_path = _body_path(settings, plan.branch)
    if branch_exists(settings.repo, plan.branch):
        return 200, {
            "status": "already prepared",
            "branch": plan.branch,
            "pr_body": str(body_path),
            "fingerprints": fingerprints,
        }
    # Automation must not undo a rollback: if the release this would restore was itself
    # removed by a revert branch, a human decides.
    undone = f"{settings.branch_prefix}{plan.restored.bento_version}"
    if branch_exists(settings.repo, undone):
        raise RevertError(
            f"reverting {plan.removed.bento_tag} would restore {plan.restored.bento_tag}, "
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
        "restored_commit": outcome.plan.restored_commit.sha,
        "revert_commit": outcome.branch.revert_commit,
        "removed": outcome.plan.removed.bento_tag,
        "restored": outcome.plan.restored.bento_tag,
        "taken_back": outcome.plan.taken_back_total,
        "pr_body": str(body_path),
        "fingerprints": fingerprints,
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
        # Labels are the sender's text: escaped, they cannot forge a line of the log.
        fingerprints = sorted({alert.fingerprint for alert in wanted})
        names = printable(",".join(sorted({alert.name for alert in wanted})))
        who = f"{names} {printable(','.join(fingerprints))}"
        async with lock:
            try:
                text = body.decode(errors="replace")
                code, answer = await run_in_threadpool(_prepare, settings, text, wanted)
            except BranchExistsError as error:
                log(f"{who}: {printable(str(error))}")
                return _answer(
                    200, status="already prepared", detail=str(error), fingerprints=fingerprints
                )
            except MlgitopsError as error:
                log(f"{who}: refused: {printable(str(error))}")
                return _answer(409, error=str(error))
        log(f"{who}: {answer['status']} {answer['branch']}")
        return _answer(code, **answer)

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    return Starlette(
        routes=[
            Route("/alerts", alerts, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )

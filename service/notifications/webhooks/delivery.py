"""Webhook events as outbox rows (service.outbox): queued by the service in its transaction, attempted by
the `webhooks.deliver` actor, re-driven by the relay when their message was lost.

An attempt: the worker claims the row (two copies of one message never deliver at once, and a message
arriving before the next attempt is due is refused), checks where the URL points (url_policy), POSTs the
signed body (signing) with the guarded client (client) under one hard time limit, records the attempt,
then marks the event delivered (2xx), failed (other 3xx/4xx, an address that is not allowed, or the last
of MAX_ATTEMPTS), or schedules the next attempt (network error, 5xx, 429) with exponential backoff or
the receiver's Retry-After. Nothing here touches the subject (the import job): a failed delivery
changes only the event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from uuid import UUID

import httpx
import orjson

from service import metrics, outbox
from service.config import Settings
from service.context import Context
from service.db import Queries
from service.logs import request_id_var
from service.messages import Message
from service.notifications.webhooks.client import ForbiddenAddress
from service.notifications.webhooks.signing import encode_body, signed_headers
from service.notifications.webhooks.url_policy import InvalidWebhookURL, endpoint, parse_url, resolve_checked

log = logging.getLogger("tasklane.webhooks")
Q = Queries("webhooks")

ACTOR = "webhooks.deliver"
MAX_ATTEMPTS = 4  # the first attempt and 3 retries
IMPORT_EVENT_TYPES = frozenset({"import.completed", "import.failed", "import.cancelled"})
IMPORT_DATA_FIELDS = ("job_id", "status", "rows_processed", "rows_imported", "rows_failed", "finished_at")
LOST_ATTEMPT = "no outcome recorded: the worker stopped during this attempt"

# What one delivery call did. The first three are also the outcome stored on the attempt; "not-due"
# means no attempt was made: the event is done, not yet due, or another worker holds it.
AttemptResult = Literal["delivered", "retrying", "failed", "not-due"]


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


async def queue_import_event(
    ctx: Context, *, job_id: UUID, user_id: UUID, url: str, event_type: str, data: Mapping[str, Any]
) -> Message:
    """Record the webhook for an import job that ended, in the caller's transaction; dispatch the returned
    message after commit. `event_type` is import.completed, import.failed or import.cancelled; `data` holds
    status, rows_processed, rows_imported, rows_failed and finished_at (job_id is filled in, and
    completed_at, the name seed 002 gives the end time, is finished_at again), and for import.failed an
    `error` saying why. Queueing the same type for the same job again returns the first event's message. The
    URL is not checked here (it was at upload, and is again at every attempt): this never fails the
    caller's transaction over it."""
    if event_type not in IMPORT_EVENT_TYPES:
        raise ValueError(f"unknown import event type {event_type!r}")
    body = dict(data)
    if str(body.setdefault("job_id", job_id)) != str(job_id):
        raise ValueError("data['job_id'] differs from job_id")
    missing = [name for name in IMPORT_DATA_FIELDS if name not in body]
    if missing:
        raise ValueError(f"import event data lacks {', '.join(missing)}")
    body.setdefault("completed_at", body["finished_at"])
    payload = _json_value({"type": event_type, "timestamp": datetime.now(UTC), "data": body})
    orjson.dumps(payload)  # fails here, in the caller, rather than in the worker
    event_id = await ctx.db.fetch_val(
        Q.queue_webhook_event,
        subject_id=job_id,
        user_id=user_id,
        url=url,
        type=event_type,
        payload=payload,
        request_id=request_id_var.get(),
        grace=ctx.settings.relay_grace,
    )
    if event_id is None:  # another transaction queued the same event at the same moment (not in our snapshot)
        raise RuntimeError(f"webhook event {event_type} for job {job_id} was queued concurrently")
    return outbox.message(ACTOR, event_id)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retry_delay(settings: Settings, attempt: int, retry_after: float | None = None) -> float:
    """Seconds before the attempt after `attempt`: the receiver's Retry-After (capped at
    WEBHOOK_RETRY_AFTER_CAP) when it gave one, else WEBHOOK_RETRY_BASE doubled per attempt, +/-20% jitter."""
    if retry_after is not None:
        return min(max(retry_after, 0.0), settings.webhook_retry_after_cap)
    return outbox.Backoff(settings.webhook_retry_base, jitter=(0.8, 1.2)).delay(attempt)


def claim_lease(settings: Settings) -> float:
    """How long a worker holds an event for one attempt; far longer than the attempt's hard time limit."""
    return settings.webhook_timeout + 60


async def _post(
    http: httpx.AsyncClient, settings: Settings, event_id: str, url: str, body: bytes
) -> tuple[int, str | None]:
    """One attempt; returns the status code and the Retry-After header. The response body is not read.
    Raises InvalidWebhookURL if the URL may not be called (final), OSError or httpx.HTTPError otherwise."""
    parsed = parse_url(url)
    await resolve_checked(parsed, settings.webhook_allow_private)  # DNS may have changed since the upload
    headers = signed_headers(settings.webhook_secret, event_id, body)
    async with http.stream("POST", parsed, content=body, headers=headers) as response:
        return response.status_code, response.headers.get("retry-after")


async def deliver(ctx: Context, http: httpx.AsyncClient, event_id: UUID) -> AttemptResult:
    """Make one delivery attempt of a webhook event, if it is due; returns what happened."""
    s = ctx.settings
    row = await outbox.claim(ctx, Q.claim_webhook_event, event_id, lease=claim_lease(s), max_attempts=MAX_ATTEMPTS)
    if row is None:
        return "not-due"
    attempt: int = row["attempts"]
    status_code: int | None = None
    retry_after: str | None = None
    error: str | None = None
    final = False
    started = time.monotonic()
    try:
        # One limit for everything: httpx's timeouts are per phase, so a receiver trickling its answer
        # could otherwise hold the attempt (and the worker) much longer.
        async with asyncio.timeout(s.webhook_timeout):
            status_code, retry_after = await _post(http, s, str(event_id), row["url"], encode_body(row["payload"]))
    except (InvalidWebhookURL, ForbiddenAddress) as exc:
        error, final = str(exc.detail if isinstance(exc, InvalidWebhookURL) else exc), True
    except (TimeoutError, httpx.TimeoutException):
        error = f"timed out after {s.webhook_timeout:g} s"
    except (httpx.HTTPError, OSError) as exc:
        error = outbox.describe(exc)
    except Exception as exc:  # anything else still counts as an attempt (retried), never a stuck claim
        log.exception(
            "unexpected error delivering a webhook", extra={"event_id": str(event_id), "endpoint": endpoint(row["url"])}
        )
        error = outbox.describe(exc)
    duration_ms = round((time.monotonic() - started) * 1000)

    delay = 0.0
    if status_code is not None and 200 <= status_code < 300:
        outcome: AttemptResult = "delivered"
    elif final:
        outcome = "failed"
    elif status_code is not None and status_code < 500 and status_code != 429:
        outcome = "failed"
        error = f"HTTP {status_code}" + (": redirects are not followed" if 300 <= status_code < 400 else "")
    else:
        if status_code is not None:
            error = f"HTTP {status_code}"
        if attempt >= MAX_ATTEMPTS:
            outcome = "failed"
        else:
            outcome = "retrying"
            delay = retry_delay(s, attempt, parse_retry_after(retry_after))

    changed = await ctx.db.fetch_val(
        Q.record_webhook_attempt,
        id=event_id,
        attempt=attempt,
        status_code=status_code,
        error=error,
        duration_ms=duration_ms,
        outcome=outcome,
        status={"delivered": "delivered", "failed": "failed", "retrying": "pending"}[outcome],
        retry_in=delay,
        grace=s.relay_grace,
    )
    extra = {
        "event_id": str(event_id),
        "attempt": attempt,
        "outcome": outcome,
        "status_code": status_code,
        "endpoint": endpoint(row["url"]),
    }
    metrics.count(f"webhook_deliveries_{outcome}")  # every attempt made, as recorded on it
    if changed is None:
        # The claim lapsed (the relay handed the event on): the attempt is recorded, the event is not ours.
        log.warning("webhook attempt finished after its claim lapsed", extra=extra)
        return outcome
    if outcome == "retrying":
        outbox.retry_later(ctx, ACTOR, event_id, delay)
        log.info("webhook attempt failed, retrying", extra={**extra, "error": error, "retry_in": round(delay, 3)})
    elif outcome == "failed":
        log.warning("webhook delivery failed", extra={**extra, "error": error})
    else:
        log.info("webhook delivered", extra={**extra, "duration_ms": duration_ms})
    return outcome


async def redrive(ctx: Context) -> list[Message]:
    """Messages for events whose message was lost (Redis restart, killed worker); for the relay."""
    return await outbox.redrive(ctx, ACTOR, Q.due_webhook_events, max_attempts=MAX_ATTEMPTS, lost_error=LOST_ATTEMPT)


async def list_attempts(ctx: Context, subject_id: UUID, user_id: UUID) -> list[dict[str, Any]]:
    """Delivery attempts for a subject (an import job) of this user, in order:
    [{attempt, status_code, error, duration_ms, created_at}]; [] if there are none."""
    rows = await ctx.db.fetch_all(Q.list_webhook_attempts, subject_id=subject_id, user_id=user_id)
    return [dict(r) for r in rows]

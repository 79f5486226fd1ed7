"""Signed outbound webhooks: queued as event rows by the service, POSTed by the `webhooks.deliver` actor.

Signing follows Standard Webhooks (https://www.standardwebhooks.com): `webhook-id` is the event row's
id and stays the same on every attempt, so receivers can drop duplicates; `webhook-timestamp` is the
time of each attempt (receivers refuse timestamps more than 5 minutes away, and a retry after a long
Retry-After or a relay re-drive can come later than that); `webhook-signature` is `v1,<base64 HMAC-SHA256>`
of `{id}.{timestamp}.{body}` keyed with WEBHOOK_SECRET. The body is the stored payload serialised with
sorted keys, so every attempt of one event sends the same bytes.

Delivery: a worker claims the row (two copies of one message never deliver at once, and a message
arriving before the next attempt is due is refused), checks where the URL points, POSTs under a hard
total time limit, records the attempt, then marks the event delivered (2xx), failed (other 3xx/4xx, an
address that is not allowed, or the last of MAX_ATTEMPTS), or schedules the next attempt itself (network
error, 5xx, 429) with exponential backoff or the receiver's Retry-After. The relay re-drives an event
whose message was lost. Nothing here touches the subject (the import job): a failed delivery changes
only the event.

Server-side request forgery: a URL is refused when its host resolves to any private, loopback,
link-local, reserved, multicast or unspecified address (unless WEBHOOK_ALLOW_PRIVATE), when the user
gives it and again at every attempt. The worker's HTTP client also checks the addresses it actually
connects to, so a DNS answer that changes between the check and the connection (DNS rebinding) is
refused too. Redirects are never followed and environment proxies are ignored.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
import typing
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from uuid import UUID

import httpcore
import httpx
import orjson

from service import metrics, outbox
from service.config import Settings, webhook_key
from service.context import Context
from service.db import Queries
from service.errors import Unprocessable
from service.logs import request_id_var
from service.messages import Message

log = logging.getLogger("tasklane.webhooks")
Q = Queries("webhooks")

ACTOR = "webhooks.deliver"
MAX_ATTEMPTS = 4  # the first attempt and 3 retries
MAX_URL_LENGTH = 2048
# URLs that pass the syntax checks below, as a JSON Schema pattern for the OpenAPI document: http(s), a
# host name or IPv4 address, an optional port, then visible ASCII. (The checks take a little more:
# IPv6 literals and international names; and where the host may point is checked apart.)
_LABEL = "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://{_LABEL}(\.{_LABEL})*(:[0-9]{{1,4}})?([/?#][\x21-\x7e]*)?$"
RESOLVE_TIMEOUT = 5.0  # seconds validate_url_async waits for DNS
USER_AGENT = "tasklane-webhooks/0.1"
IMPORT_EVENT_TYPES = frozenset({"import.completed", "import.failed", "import.cancelled"})
IMPORT_DATA_FIELDS = ("job_id", "status", "rows_processed", "rows_imported", "rows_failed", "finished_at")
LOST_ATTEMPT = "no outcome recorded: the worker stopped during this attempt"

# What one delivery call did. The first three are the outcomes of an attempt (also stored on it);
# "not-due" means no attempt was made: the event is done, not yet due, or another worker holds it.
Outcome = Literal["delivered", "retrying", "failed", "not-due"]
OUTCOMES: tuple[Outcome, ...] = ("delivered", "retrying", "failed")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class InvalidWebhookURL(Unprocessable):
    """A webhook URL the service will not call (422)."""

    slug, title = "invalid-webhook-url", "Invalid webhook URL"

    def __init__(self, detail: str, *, field: str = "webhook_url") -> None:
        super().__init__(detail, errors=[{"field": field, "message": detail}])


class ForbiddenAddress(Exception):
    """Raised by the worker's HTTP client when a connection would go to an address that is not allowed."""


# --- Signing ---------------------------------------------------------------------------------------


def sign(secret_whsec: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one attempt: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    key = webhook_key(secret_whsec)
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(mac).decode()}"


def signed_headers(secret_whsec: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret_whsec, msg_id, timestamp, body),
    }


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The bytes sent for a stored payload: the same on every attempt."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


# --- Where a URL may point ---------------------------------------------------------------------------


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_forbidden_address(ip: IPAddress) -> bool:
    """True for anything but a public unicast address: private, loopback, link-local, reserved,
    multicast, unspecified, shared (CGNAT), documentation... IPv4 carried in IPv6 is judged as IPv4."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_forbidden_address(embedded)
        if ip.is_site_local:
            return True
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def _parse(url: str) -> httpx.URL:
    """Syntax checks, with the same parser the HTTP client uses (no parser differential)."""
    if not isinstance(url, str) or not url.strip():
        raise InvalidWebhookURL("The webhook URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookURL(f"The webhook URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidWebhookURL("The webhook URL contains spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidWebhookURL(f"The webhook URL is not a valid URL ({exc})") from None
    if parsed.scheme not in {"http", "https"}:
        raise InvalidWebhookURL("The webhook URL must start with http:// or https://")
    if not parsed.host:
        raise InvalidWebhookURL("The webhook URL has no host")
    if parsed.userinfo:
        raise InvalidWebhookURL("The webhook URL must not contain a user name or password")
    return parsed


def endpoint(url: str) -> str:
    """What a log line may show of a webhook URL: scheme, host and port. Path, query and user info can
    hold secrets (tokens in a query string are common)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        return "<invalid URL>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def _host(parsed: httpx.URL) -> str:
    """The host as the HTTP client will look it up (IDNA-encoded by httpx, not by the socket module)."""
    return parsed.raw_host.decode("ascii")


def _port(parsed: httpx.URL) -> int:
    return parsed.port or (443 if parsed.scheme == "https" else 80)


def _addresses(infos: Iterable[tuple[Any, ...]]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    return found


def _check_addresses(host: str, addresses: list[IPAddress], allow_private: bool) -> None:
    if allow_private:
        return
    if not addresses:
        raise InvalidWebhookURL(f"The webhook URL's host {host} has no address")
    for ip in addresses:
        if is_forbidden_address(ip):
            shown = host if host == str(ip) else f"{host} ({ip})"
            raise InvalidWebhookURL(
                f"The webhook URL points to {shown}, a private, loopback, link-local or otherwise "
                "non-public address; webhooks are only sent to public addresses"
            )


def validate_url(url: str, allow_private: bool) -> str:
    """Check a webhook URL a user gave: http(s), a host, no user info, at most MAX_URL_LENGTH characters,
    and (unless allow_private) every address the host resolves to is public. Returns the URL as it will
    be called; raises InvalidWebhookURL (422). Blocks on DNS: from async code use validate_url_async.
    With allow_private the host is not resolved at all."""
    parsed = _parse(url)
    if allow_private:
        return str(parsed)
    try:
        infos = socket.getaddrinfo(_host(parsed), _port(parsed), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InvalidWebhookURL(f"The webhook URL's host {parsed.host} cannot be resolved ({exc})") from None
    _check_addresses(parsed.host, _addresses(infos), allow_private)
    return str(parsed)


async def _resolve_checked(parsed: httpx.URL, allow_private: bool) -> None:
    """Resolves off the event loop; raises OSError if the host does not resolve, InvalidWebhookURL if it
    resolves to an address that is not allowed. With allow_private nothing is checked (nor resolved)."""
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(_host(parsed), _port(parsed), type=socket.SOCK_STREAM)
    except UnicodeError as exc:
        raise socket.gaierror(str(exc)) from exc
    _check_addresses(parsed.host, _addresses(infos), allow_private)


async def validate_url_async(url: str, allow_private: bool) -> str:
    """validate_url with the DNS lookup off the event loop (and bounded by RESOLVE_TIMEOUT seconds)."""
    parsed = _parse(url)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            await _resolve_checked(parsed, allow_private)
    except TimeoutError:
        raise InvalidWebhookURL(f"The webhook URL's host {parsed.host} did not resolve in time") from None
    except OSError as exc:
        raise InvalidWebhookURL(f"The webhook URL's host {parsed.host} cannot be resolved ({exc})") from None
    return str(parsed)


# --- Queueing ---------------------------------------------------------------------------------------


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
    `error` saying why. Queueing the
    same type for the same job again returns the first event's message. The URL is not checked here (it was
    at upload, and is again at every attempt): this never fails the caller's transaction over it."""
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


# --- Delivery ---------------------------------------------------------------------------------------


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
    parsed = _parse(url)
    await _resolve_checked(parsed, settings.webhook_allow_private)  # DNS may have changed since the upload
    headers = signed_headers(settings.webhook_secret, event_id, body)
    async with http.stream("POST", parsed, content=body, headers=headers) as response:
        return response.status_code, response.headers.get("retry-after")


async def deliver(ctx: Context, http: httpx.AsyncClient, event_id: UUID) -> Outcome:
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
        outcome: Outcome = "delivered"
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


# --- The worker's HTTP client ------------------------------------------------------------------------


class AddressGuard(httpcore.AsyncNetworkBackend):
    """Resolves the host itself, refuses the connection if any address is not allowed, and connects to
    the checked address: what was checked is what is called."""

    def __init__(self, allow_private: bool, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.allow_private = allow_private
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = _addresses(infos)
        if not self.allow_private:
            for ip in addresses:
                if is_forbidden_address(ip):
                    raise ForbiddenAddress(f"refused to connect to {host} ({ip}): not a public address")
        last: Exception = httpcore.ConnectError(f"no address for {host}")
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip), port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: typing.Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise ForbiddenAddress("webhooks never connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, with its connection pool built on an AddressGuard (httpx has no public
    parameter for the pool's network backend, so the pool it built is replaced)."""

    def __init__(self, *, allow_private: bool, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=AddressGuard(allow_private),
        )


def make_http_client(settings: Settings) -> httpx.AsyncClient:
    """The client a worker process shares for every delivery: no redirects, no environment proxies,
    connections only to allowed addresses. Close it with `await client.aclose()`."""
    return httpx.AsyncClient(
        transport=GuardedTransport(
            allow_private=settings.webhook_allow_private,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30),
        ),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(settings.webhook_timeout),
        headers={"User-Agent": USER_AGENT},
    )

"""Request context as pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request and
breaks contextvars): the request id, default security headers, and for each finished request one JSON
log line and its HTTP metrics.

Metrics: (method, route template, status, latency) go to an `Observer` (the process's
`service.metrics.recorder.Recorder`, a few dict increments with no I/O); any error there is swallowed,
metrics never fail a request. The route is the template Starlette matched (`/api/v1/users/{id}`, not
the raw path); a request that matched no route counts as UNMATCHED. The metrics endpoints are not
counted: a scraper polling every few seconds would drown the figures it reads. Done here rather than in
a middleware of its own: one wrapper layer less on every request (each one a call and a closure on the
hot path), and the status seen is the one sent, the 500 rendered below for an unhandled error included.
The observer is handed in by create_app, so this module does not import the metrics package (which
imports http/ for its routes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import internal_error
from service.logs import log_request, request_id_var, user_id_var

log = logging.getLogger("tasklane.request")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
NOT_COUNTED = frozenset({"/metrics", "/api/v1/metrics"})
UNMATCHED = "<unmatched>"  # the route of a request that matched none, in its log line and its metrics


class Observer(Protocol):
    def observe(self, method: str, route: str, status: int, seconds: float) -> None: ...


def declares_body(scope: Scope) -> bool:
    """Whether the request announces a body (a non-zero Content-Length, or chunked)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


def incoming_request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            # A client-chosen id goes into every log line: accept only a safe, short token.
            if _VALID_REQUEST_ID.match(candidate):
                return candidate
            break
    return os.urandom(16).hex()  # as unique as a uuid4, at a quarter of its cost


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, recorder: Observer | None = None) -> None:
        self.app = app
        self.recorder = recorder  # None: metrics off

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = incoming_request_id(scope)
        rid_token = request_id_var.set(request_id)
        uid_token = user_id_var.set(None)
        t0 = time.perf_counter()
        status = 500
        started = False
        header_id = request_id.encode()
        # An answer sent before the request's body was read to its end (a 413, a 401 on an upload...) closes
        # the connection: otherwise the server would go on reading, and discarding, whatever the client
        # still sends (a declared 2 GiB, or an endless chunked body) to reuse the connection.
        body_pending = declares_body(scope)
        if body_pending:
            inner_receive = receive

            async def receive() -> Message:
                nonlocal body_pending
                message = await inner_receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    body_pending = False
                return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", header_id))
                headers.extend(SECURITY_HEADERS)
                if body_pending:
                    headers.append((b"connection", b"close"))
                limits = (scope.get("state") or {}).get("rate_limit_headers")
                if limits:
                    present = {name.lower() for name, _ in headers}
                    headers.extend(
                        (name.lower().encode(), value.encode())
                        for name, value in limits.items()
                        if name.lower().encode() not in present
                    )
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            # The traceback goes to the log, under this request's id; the client gets a bare 500.
            log.exception("unhandled error", extra={"method": scope["method"], "path": scope["path"]})
            if started:
                status = 500  # the client sees a cut response: count it as the failure it is
                raise
            await internal_error()(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - t0
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            user_id = (scope.get("state") or {}).get("user_id")
            log_request(
                {
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "user_id": str(user_id) if user_id else None,
                }
            )
            if self.recorder is not None and route not in NOT_COUNTED:
                with contextlib.suppress(Exception):  # metrics never fail a request
                    self.recorder.observe(scope["method"], route, status, seconds)
            user_id_var.reset(uid_token)
            request_id_var.reset(rid_token)

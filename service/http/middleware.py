"""Request context as pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request and
breaks contextvars): the request id, one JSON log line per request, and default security headers."""

from __future__ import annotations

import logging
import re
import time
import uuid

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
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
                raise
            await internal_error()(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            user_id = (scope.get("state") or {}).get("user_id")
            log_request(
                {
                    "method": scope["method"],
                    "route": getattr(route, "path", None) or "<unmatched>",
                    "status": status,
                    "duration_ms": round((time.perf_counter() - t0) * 1000, 2),
                    "user_id": str(user_id) if user_id else None,
                }
            )
            user_id_var.reset(uid_token)
            request_id_var.reset(rid_token)

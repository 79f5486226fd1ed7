"""Per-route HTTP metrics as pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request).

For each finished request it hands (method, route template, status, latency) to the process's
`Recorder`: a few dict increments, no I/O and no await on the request path; the recorder's flusher
takes it to Redis. Any error in recording is swallowed: metrics never fail a request.

The route is the template Starlette matched (`/api/v1/users/{id}`, not the raw path), read from
`scope["route"]` after the call as RequestContextMiddleware does; a request that matched no route is
counted under "<unmatched>". The metrics endpoints themselves are not counted: a scraper polling every
few seconds would otherwise drown the figures it reads, and reading would change what is read.

This middleware sits outside RequestContextMiddleware, so it sees the 500 that one renders for an
unhandled error; an error escaping after the response started counts as 5xx.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics.recorder import UNMATCHED, Recorder

NOT_COUNTED = frozenset({"/metrics", "/api/v1/metrics"})


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, recorder: Recorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            status = 500
            raise
        finally:
            try:
                route = getattr(scope.get("route"), "path", None) or UNMATCHED
                if route not in NOT_COUNTED:
                    self.recorder.observe(scope["method"], route, status, time.perf_counter() - t0)
            except Exception:  # noqa: S110  (metrics never fail a request)
                pass

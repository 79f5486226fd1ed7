"""A real HTTP webhook receiver for tests: a threaded `http.server` on 127.0.0.1 that records every
request (method, path, headers, body) and answers from a script.

    with WebhookReceiver([500, 500, 200]) as receiver:      # then 200 for anything after the script
        ... deliver to receiver.url ...
        requests = await receiver.wait_for(3)

A script step is a status code or a `Reply`: status, extra headers (e.g. Retry-After, Location), a
`hang` in seconds to wait before answering (a receiver that does not answer in time), or a `trickle`:
the status line, then one header line every `trickle` seconds for ever (a receiver that keeps the
connection busy without ever finishing its answer). Hanging handlers are released when the receiver stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

from tests.support import eventually


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    hang: float = 0.0
    trickle: float = 0.0
    body: bytes = b""


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    at: float  # time.monotonic() when the request was read

    def verify(self, secret: str) -> Any:
        """Check the Standard Webhooks signature with the public library; returns the parsed body."""
        return Webhook(secret).verify(self.body, self.headers)


class WebhookReceiver:
    def __init__(self, script: Iterable[int | Reply] = (), *, then: int | Reply = 200) -> None:
        self.script = [step if isinstance(step, Reply) else Reply(step) for step in script]
        self.then = then if isinstance(then, Reply) else Reply(then)
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver._handle(self)

            do_GET = do_PUT = do_DELETE = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the client went away (it timed out on a hanging reply): expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/tasklane"

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self._lock:
            self.requests.append(
                Received(
                    handler.command,
                    handler.path,
                    {k.lower(): v for k, v in handler.headers.items()},
                    body,
                    time.monotonic(),
                )
            )
            reply = self.script.pop(0) if self.script else self.then
        if reply.hang and self._released.wait(reply.hang):
            return  # the receiver is stopping
        if reply.trickle:
            handler.close_connection = True
            handler.wfile.write(f"HTTP/1.1 {reply.status} OK\r\n".encode())
            n = 0
            while not self._released.wait(reply.trickle):
                n += 1
                handler.wfile.write(f"X-Trickle-{n}: {n}\r\n".encode())
            return
        handler.send_response(reply.status)
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(reply.body)))
        handler.end_headers()
        if reply.body:
            handler.wfile.write(reply.body)

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Received]:
        """The requests received once there are `count` of them."""

        def enough() -> list[Received] | None:
            found = self.received()
            return found if len(found) >= count else None

        return await eventually(enough, timeout, f"{count} webhook request(s)", every=0.02)

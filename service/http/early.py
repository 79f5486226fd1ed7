"""An answer given before the request body was read to its end, then the rest of the body read and dropped.

Closing a connection whose request body is still arriving makes the kernel reset it, and a client that
sends its whole body before reading (curl, most HTTP libraries) then never sees the answer. So the full
answer goes out at once (its Content-Length tells the client it is complete), the rest of the body is
read and discarded, at most up to `limit` bytes, and only then is the response ended; the request
middleware has marked it `Connection: close`, so the connection closes cleanly after it.
"""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class AnswerThenDrain(Response):
    def __init__(self, response: Response, limit: int) -> None:
        super().__init__(response.body, response.status_code, media_type=response.media_type)
        self.raw_headers = response.raw_headers
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": True})
        drained = 0
        while drained <= self.limit:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away
            drained += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})

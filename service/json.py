"""JSON in and out through orjson, which serialises UUIDs, datetimes and dates natively."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson
from starlette.responses import Response


def _default(value: Any) -> Any:
    # asyncpg returns its own UUID type, which orjson does not take for a uuid.UUID.
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps(content)


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(content, status_code=status_code, headers=headers)

"""Request bodies, read with a size cap and validated into pydantic models."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel
from starlette.requests import Request

from service.errors import MalformedBody, PayloadTooLarge, UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)


def declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise MalformedBody("Content-Length is not a number") from None


async def read_body(request: Request, limit: int) -> bytes:
    declared = declared_length(request)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"The body may be at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body may be at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object, not yet validated (for callers that also need it as sent)."""
    kind = media_type(request)
    if kind and kind != "application/json" and not kind.endswith("+json"):
        raise UnsupportedMediaType("Send the body as application/json")
    body = await read_body(request, limit)
    try:
        data = orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"The body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedBody("The body must be a JSON object")
    return data


async def read_json(request: Request, model: type[M], limit: int) -> M:
    return model.model_validate(await read_json_object(request, limit))


async def read_form(request: Request, model: type[M], limit: int) -> M:
    """An application/x-www-form-urlencoded body, validated into `model`."""
    body = await read_body(request, limit)
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise MalformedBody("The form body is not valid") from None
    return model.model_validate(dict(pairs))

"""Errors that carry their own HTTP status, and the one place that renders them as problem+json (RFC 9457)."""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import asyncpg
import redis.exceptions
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from service.json import dumps

log = logging.getLogger("tasklane.errors")
PROBLEM_JSON = "application/problem+json"


class ServiceError(Exception):
    """A failure the client can act on. Subclasses set `status`, `slug` and a default `title`."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = dict(headers or {})
        self.errors = list(errors) if errors is not None else None


class BadRequest(ServiceError):
    pass


class MalformedBody(ServiceError):
    slug, title = "malformed-body", "Malformed request body"


class Unauthorized(ServiceError):
    status, slug, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, *, scheme: str = "Bearer") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": f'{scheme} realm="tasklane"'})


class Forbidden(ServiceError):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(ServiceError):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(ServiceError):
    status, slug, title = 409, "conflict", "Conflict"


class Gone(ServiceError):
    status, slug, title = 410, "gone", "Gone"


class PayloadTooLarge(ServiceError):
    status, slug, title = 413, "payload-too-large", "Request body too large"


class UnsupportedMediaType(ServiceError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


class Unprocessable(ServiceError):
    status, slug, title = 422, "validation-error", "Invalid request"


class TooManyRequests(ServiceError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class Unavailable(ServiceError):
    status, slug, title = 503, "unavailable", "Service temporarily unavailable"


# Failures of a backing service: the request could not be served now, but nothing is wrong with it.
BACKEND_DOWN: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # A pooled connection the server is terminating (PostgreSQL stopping or restarting) can still be handed
    # out for a moment; using it fails inside asyncpg's protocol ("cannot switch to state ...").
    asyncpg.exceptions.InternalClientError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
) -> Response:
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": f"/problems/{slug}" if slug else "about:blank",
        "title": title or phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = list(errors)
    return Response(dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as [{field, message}], without echoing the rejected values back."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(part) for part in err["loc"]) or "body"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "Unknown field"
        out.append({"field": loc, "message": message.removeprefix("Value error, ")})
    return out


async def service_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return problem(exc.status, exc.detail, title=exc.title, slug=exc.slug, headers=exc.headers, errors=exc.errors)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    errors = field_errors(exc)
    names = ", ".join(e["field"] for e in errors)
    return problem(422, f"Invalid fields: {names}", title="Invalid request", slug="validation-error", errors=errors)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
    if exc.status_code == 404:
        detail = detail or "No resource at this address"
    elif exc.status_code == 405:
        detail = detail or f"Method {request.method} is not allowed here"
    return problem(exc.status_code, detail or HTTPStatus(exc.status_code).phrase, headers=exc.headers)


async def backend_down_handler(request: Request, exc: Exception) -> Response:
    log.warning("backing service unavailable: %s", type(exc).__name__)
    return problem(
        503, "A backing service is unavailable; try again shortly", slug="unavailable", headers={"Retry-After": "5"}
    )


def internal_error() -> Response:
    return problem(500, "An unexpected error occurred", slug="internal-error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ServiceError: service_error_handler,
    ValidationError: validation_error_handler,
    HTTPException: http_error_handler,
    **{exc: backend_down_handler for exc in BACKEND_DOWN},
}
# Anything else is caught by RequestContextMiddleware, which logs it with the request id.

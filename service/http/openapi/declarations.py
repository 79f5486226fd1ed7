"""What an endpoint declares about itself for the OpenAPI document: `@operation(...)` next to its code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from starlette.routing import BaseRoute

F = TypeVar("F", bound=Callable[..., Any])
Auth = Literal["bearer", "basic", "metrics"] | None


@dataclass(frozen=True)
class Body:
    """A response or request body that is not a JSON model: a media type and a plain schema."""

    media_type: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    encoding: dict[str, Any] | None = None  # of a multipart body's parts


@dataclass(frozen=True)
class Form:
    """A model sent as an application/x-www-form-urlencoded body."""

    model: type[BaseModel]


Content = type[BaseModel] | Body | Form


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    # A body, or several media types of one (JSON and a form, JSON and HTML), for requests and answers.
    responses: dict[int, Content | tuple[Content, ...] | None]
    body: Content | tuple[Content, ...] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    auth: Auth = "bearer"
    headers: dict[int, dict[str, str]] = field(default_factory=dict)  # status -> {header: description}
    request_headers: dict[str, str] = field(default_factory=dict)  # optional request headers
    idempotent: bool = False  # takes an Idempotency-Key (service.idempotency)
    rate_limited: bool = False  # counted by service.http.ratelimit
    description: str | None = None


@dataclass(frozen=True)
class Webhook:
    """An event the service POSTs to a URL the user gave: its payload model."""

    summary: str
    payload: type[BaseModel]
    description: str | None = None


def operation(**spec: Any) -> Callable[[F], F]:
    """Attach the OpenAPI description of an endpoint to it."""

    def attach(endpoint: F) -> F:
        endpoint.__openapi__ = Operation(**spec)  # type: ignore[attr-defined]
        return endpoint

    return attach


def spec_of(route: BaseRoute) -> Operation | None:
    return getattr(getattr(route, "endpoint", None), "__openapi__", None)

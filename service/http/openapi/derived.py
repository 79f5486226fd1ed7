"""What an operation's shape implies, so that a new endpoint is described fully by what it declares: the
error answers (a body can be malformed, too large or of the wrong type; a query can be invalid;
credentials can be refused), and the headers every answer carries (X-Request-ID; Retry-After on 429 and
503; the rate-limit fields on every answer of a rate-limited operation; Idempotent-Replayed on a replayed
creation)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from service import idempotency
from service.http.openapi.declarations import Operation
from service.http.openapi.schemas import REF
from service.http.ratelimit import POLICY_HEADERS

# Answers any operation can give, whatever it declares.
ALWAYS = (500, 503)
REQUEST_ID = "X-Request-ID"
INTEGER = {"type": "integer", "minimum": 0}
# Response headers: schema and description, by name. Anything else is a string.
RESPONSE_HEADERS: dict[str, tuple[dict[str, Any], str]] = {
    REQUEST_ID: ({"type": "string"}, "This request's id: the one sent, when valid, or a new one"),
    "Retry-After": (INTEGER, "Seconds to wait before trying again"),
    **{name: ({"type": "string"}, text) for name, text in POLICY_HEADERS.items()},
    idempotency.REPLAYED_HEADER: (
        {"type": "string", "enum": ["true"]},
        f"Present when this is the stored answer to an earlier request with the same {idempotency.HEADER}",
    ),
    "WWW-Authenticate": ({"type": "string"}, "The authentication scheme to use"),
    "Location": ({"type": "string", "format": "uri-reference"}, "The resource"),
}
REQUEST_HEADERS: dict[str, dict[str, Any]] = {
    idempotency.HEADER: {"type": "string", "pattern": f"^{idempotency.KEY_PATTERN}$"},
}
IDEMPOTENCY_TEXT = (
    "1 to 255 visible ASCII characters. Retry-safe creation: the same key and request within 24 h return the "
    "first response (another request with the key: 422; the first still running: 409)"
)
# Headers every answer of some status carries, or may carry.
STATUS_HEADERS: dict[int, tuple[str, ...]] = {
    401: ("WWW-Authenticate",),
    429: ("Retry-After", *POLICY_HEADERS),
    503: ("Retry-After",),
}


def header(name: str, description: str | None = None, *, required: bool = False) -> dict[str, Any]:
    schema, text = RESPONSE_HEADERS.get(name, ({"type": "string"}, name))
    out: dict[str, Any] = {"description": description or text, "schema": schema}
    if required:
        out["required"] = True
    return out


def implied_errors(op: Operation, auth_enforced: bool) -> set[int]:
    """Every error status the operation can answer: those it declares and those its shape implies."""
    errors = set(op.errors) | set(ALWAYS)
    if op.body is not None:
        errors |= {400, 413, 415, 422}  # malformed, too large, wrong media type, invalid
    if op.query is not None:
        errors.add(422)
    if op.idempotent:
        errors |= {400, 409, 422}  # malformed key, same key still running, same key for another request
    if op.rate_limited:
        errors.add(429)
    if op.auth is not None and auth_enforced:
        errors.add(401)
    return errors


def error_response(status: int, rate_limited: bool) -> dict[str, Any]:
    names = set(STATUS_HEADERS.get(status, ()))
    if rate_limited:
        names |= set(POLICY_HEADERS)  # the limit was counted before the request failed otherwise
    headers = {REQUEST_ID: header(REQUEST_ID, required=True)} | {name: header(name) for name in sorted(names)}
    return {
        "description": HTTPStatus(status).phrase,
        "headers": headers,
        "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
    }

"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

Each endpoint declares its operation with `@operation(...)` next to its code; `document(routes)` walks
the routes, so a route cannot exist without a description (a test walks the table too), and request
and response schemas are the very models that validate and shape the traffic.

Much of each operation is derived rather than declared, so a new endpoint is described fully by what
it declares: the error answers its shape implies (a body can be malformed, too large or of the wrong
type; a query can be invalid; credentials can be refused), the headers every answer carries
(X-Request-ID; Retry-After on 429 and 503; the rate-limit fields on every answer of a rate-limited
operation; Idempotent-Replayed on a replayed creation), and the links a client follows from a created
or listed resource (its `id`) to every operation under `<collection>/{id}`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route

from service import idempotency
from service.http.ratelimit import POLICY_HEADERS

F = TypeVar("F", bound=Callable[..., Any])
Auth = Literal["bearer", "basic", "metrics"] | None
REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


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


PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}

SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "Access token from login"},
    "basic": {"type": "http", "scheme": "basic", "description": "Email and password"},
    "metrics": {"type": "http", "scheme": "bearer", "description": "METRICS_TOKEN"},
}
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


def _header(name: str, description: str | None = None, *, required: bool = False) -> dict[str, Any]:
    schema, text = RESPONSE_HEADERS.get(name, ({"type": "string"}, name))
    out: dict[str, Any] = {"description": description or text, "schema": schema}
    if required:
        out["required"] = True
    return out


def _variants(item: Content | tuple[Content, ...] | None) -> tuple[Content, ...]:
    if item is None:
        return ()
    return item if isinstance(item, tuple) else (item,)


def _content(item: Content | tuple[Content, ...] | None) -> dict[str, Any]:
    content = {}
    for variant in _variants(item):
        media, schema = _schema_of(variant)
        content[media] = {"schema": schema}
        if isinstance(variant, Body) and variant.encoding:
            content[media]["encoding"] = variant.encoding
    return content


def _models(operations: list[Operation], webhooks: Mapping[str, Webhook]) -> list[tuple[type[BaseModel], Any]]:
    """Every model the document names: request bodies as validated, responses as serialised (a model
    used both ways gets two schemas, as pydantic names them). Query models are inlined as parameters."""
    seen: dict[tuple[str, str], tuple[type[BaseModel], Literal["validation", "serialization"]]] = {}
    for op in operations:
        for item in _variants(op.body):
            model = item.model if isinstance(item, Form) else item
            if isinstance(model, type) and issubclass(model, BaseModel):
                seen.setdefault((model.__name__, "validation"), (model, "validation"))
        for response in op.responses.values():
            for item in _variants(response):
                if isinstance(item, type) and issubclass(item, BaseModel):
                    seen.setdefault((item.__name__, "serialization"), (item, "serialization"))
    for hook in webhooks.values():
        seen.setdefault((hook.payload.__name__, "serialization"), (hook.payload, "serialization"))
    return list(seen.values())


def _schema_of(item: Content) -> tuple[str, dict[str, Any]]:
    if isinstance(item, Body):
        return item.media_type, item.schema
    if isinstance(item, Form):
        return "application/x-www-form-urlencoded", {"$ref": REF.format(model=item.model.__name__)}
    return "application/json", {"$ref": REF.format(model=item.__name__)}


def _allows_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return (
        kind == "null"
        or (isinstance(kind, list) and "null" in kind)
        or any(_allows_null(option) for option in schema.get("anyOf", []))
    )


def _drop_null_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic writes `default: null` for an optional field even where null itself is refused (a PATCH
    field that may be absent but not null): keep the schema honest by dropping such defaults."""
    properties = {
        name: {k: v for k, v in prop.items() if not (k == "default" and v is None and not _allows_null(prop))}
        for name, prop in schema.get("properties", {}).items()
    }
    return {**schema, "properties": properties} if properties else schema


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or has a value: it is never JSON null, so drop null from its schema."""
    prop = {k: v for k, v in prop.items() if not (k == "default" and v is None)}
    kind = prop.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        prop["type"] = rest[0] if len(rest) == 1 else rest
    options = [o for o in prop.get("anyOf", []) if o.get("type") != "null"]
    if "anyOf" in prop:
        del prop["anyOf"]
        prop = {**options[0], **prop} if len(options) == 1 else {**prop, "anyOf": options}
    return prop


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = _not_null(prop)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if prop.get("type") == "array" or any(p.get("type") == "array" for p in prop.get("anyOf", [])):
            param.update(style="form", explode=True)
        if "description" in prop:
            param["description"] = prop["description"]
        params.append(param)
    return params


def operation_id(method: str, path: str) -> str:
    return f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}"


def _errors(op: Operation, auth_enforced: bool) -> set[int]:
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


def _operation(path: str, method: str, op: Operation, auth_enforced: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": operation_id(method, path),
        "tags": [op.tag],
        "responses": {},
    }
    if op.description:
        out["description"] = op.description
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
        for name in _PATH_PARAM.findall(path)
    ]
    if op.query is not None:
        params += _query_parameters(op.query)
    request_headers = dict(op.request_headers)
    if op.idempotent:
        request_headers[idempotency.HEADER] = IDEMPOTENCY_TEXT
    params += [
        {
            "name": name,
            "in": "header",
            "required": False,
            "schema": REQUEST_HEADERS.get(name, {"type": "string"}),
            "description": text,
        }
        for name, text in request_headers.items()
    ]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": _content(op.body)}
    for status, item in op.responses.items():
        response: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if item is not None:
            response["content"] = _content(item)
        headers = {REQUEST_ID: _header(REQUEST_ID, required=True)}
        headers |= {name: _header(name, text) for name, text in op.headers.get(status, {}).items()}
        if op.idempotent:
            headers[idempotency.REPLAYED_HEADER] = _header(idempotency.REPLAYED_HEADER)
        if op.rate_limited:
            headers |= {name: _header(name) for name in POLICY_HEADERS}
        response["headers"] = headers
        out["responses"][str(status)] = response
    for status in sorted(_errors(op, auth_enforced)):
        name = f"{status}-limited" if op.rate_limited and status != 429 else str(status)
        out["responses"][str(status)] = {"$ref": f"#/components/responses/{name}"}
    out["security"] = [{op.auth: []}] if op.auth is not None and auth_enforced else []
    return out


def _error_response(status: int, rate_limited: bool) -> dict[str, Any]:
    names = set(STATUS_HEADERS.get(status, ()))
    if rate_limited:
        names |= set(POLICY_HEADERS)  # the limit was counted before the request failed otherwise
    headers = {REQUEST_ID: _header(REQUEST_ID, required=True)} | {name: _header(name) for name in sorted(names)}
    return {
        "description": HTTPStatus(status).phrase,
        "headers": headers,
        "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
    }


def _id_expression(schema: dict[str, Any] | None, schemas: dict[str, Any]) -> str | None:
    """Where a response body holds the id of the resource it is about: `#/id`, or `#/items/0/id` for a page."""

    def resolve(s: dict[str, Any]) -> dict[str, Any]:
        ref = s.get("$ref", "")
        return schemas.get(ref.rsplit("/", 1)[-1], {}) if ref else s

    if schema is None:
        return None
    body = resolve(schema)
    properties = body.get("properties", {})
    if "id" in properties:
        return "$response.body#/id"
    items = properties.get("items", {})
    if items.get("type") == "array" and "id" in resolve(items.get("items", {})).get("properties", {}):
        return "$response.body#/items/0/id"
    return None


def _add_links(paths: dict[str, dict[str, Any]], schemas: dict[str, Any]) -> None:
    """Links from an operation on a collection, or on one of its resources, whose answer names a resource
    (`id`) to every operation under `<collection>/{id}`: what a client (and schemathesis' stateful
    phase) can do next with what it just created or listed."""
    for path, item in paths.items():
        collection = path.removesuffix("/{id}")
        targets = [
            (target_path, method, target)
            for target_path, target_item in paths.items()
            if target_path == f"{collection}/{{id}}" or target_path.startswith(f"{collection}/{{id}}/")
            for method, target in target_item.items()
        ]
        if not targets:
            continue
        for method, op in item.items():
            for status, response in op["responses"].items():
                if not status.startswith("2") or "content" not in response:
                    continue
                schema = response["content"].get("application/json", {}).get("schema")
                expression = _id_expression(schema, schemas)
                if expression is None:
                    continue
                response["links"] = {
                    target["operationId"]: {"operationId": target["operationId"], "parameters": {"path.id": expression}}
                    for target_path, target_method, target in targets
                    if (target_path, target_method) != (path, method)
                }


def document(
    routes: Sequence[BaseRoute],
    *,
    title: str,
    version: str,
    server: str | None = None,
    unenforced: frozenset[str] = frozenset(),
    webhooks: Mapping[str, Webhook] | None = None,
) -> dict[str, Any]:
    """The document for `routes`. `unenforced` names security schemes this server's configuration does
    not require (the metrics token, when none is set): their operations are described as open."""
    webhooks = webhooks or {}
    paths: dict[str, dict[str, Any]] = {}
    operations: list[Operation] = []
    used_errors: set[str] = set()
    for route in routes:
        op = spec_of(route)
        if op is None or not isinstance(route, Route) or not route.include_in_schema:
            continue
        path = _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            item = _operation(path, method, op, op.auth not in unenforced)
            paths.setdefault(path, {})[method.lower()] = item
            used_errors |= {r["$ref"].rsplit("/", 1)[-1] for r in item["responses"].values() if "$ref" in r}
        operations.append(op)
    _, definitions = models_json_schema(_models(operations, webhooks), ref_template=REF)
    schemas = {name: _drop_null_defaults(s) for name, s in definitions.get("$defs", {}).items()}
    for op in operations:
        if op.query is not None:  # what the inlined parameters refer to
            schemas.update(op.query.model_json_schema(ref_template=REF).get("$defs", {}))
    schemas["Problem"] = PROBLEM
    _add_links(paths, schemas)
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Personal task lists with accounts and bulk CSV/Excel imports. "
            "Errors are application/problem+json (RFC 9457). Every answer carries an X-Request-ID header: "
            "the one the request sent, when it is 1 to 128 of A-Z a-z 0-9 . _ : - (anything else is replaced), "
            "or a new id; it is on every log line the request caused, in the web and worker processes.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                name: _error_response(int(name.split("-")[0]), name.endswith("-limited"))
                for name in sorted(used_errors)
            },
            "securitySchemes": {k: v for k, v in SECURITY_SCHEMES.items() if k not in unenforced},
        },
    }
    if webhooks:
        doc["webhooks"] = {
            name: {
                "post": {
                    "summary": hook.summary,
                    **({"description": hook.description} if hook.description else {}),
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": REF.format(model=hook.payload.__name__)}}},
                    },
                    "responses": {"200": {"description": "Any 2xx answer: delivered"}},
                }
            }
            for name, hook in webhooks.items()
        }
    if server:
        doc["servers"] = [{"url": server}]
    return doc

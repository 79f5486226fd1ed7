"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

Each endpoint declares its operation with `@operation(...)` next to its code; `document(routes)` walks
the routes, so a route cannot exist without a description (a test walks the table too), and request
and response schemas are the very models that validate and shape the traffic.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal, TypeVar

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route

F = TypeVar("F", bound=Callable[..., Any])
Auth = Literal["bearer", "basic", "metrics"] | None
REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


@dataclass(frozen=True)
class Body:
    """A response or request body that is not a JSON model: a media type and a plain schema."""

    media_type: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    responses: dict[int, type[BaseModel] | Body | None]
    body: type[BaseModel] | Body | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    auth: Auth = "bearer"
    headers: dict[int, dict[str, str]] = field(default_factory=dict)  # status -> {header: description}
    request_headers: dict[str, str] = field(default_factory=dict)  # optional request headers
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
    "metrics": {"type": "http", "scheme": "bearer", "description": "METRICS_TOKEN, when the server sets one"},
}
# Answers any operation can give, whatever it declares.
COMMON_ERRORS = (400, 413, 415, 422, 500, 503)


def _models(operations: list[Operation]) -> list[tuple[type[BaseModel], Literal["validation", "serialization"]]]:
    """Every model the document names: request bodies as validated, responses as serialised (a model
    used both ways gets two schemas, as pydantic names them). Query models are inlined as parameters."""
    seen: dict[tuple[str, str], tuple[type[BaseModel], Literal["validation", "serialization"]]] = {}
    for op in operations:
        for item in (op.body,):
            if isinstance(item, type) and issubclass(item, BaseModel):
                seen.setdefault((item.__name__, "validation"), (item, "validation"))
        for item in op.responses.values():
            if isinstance(item, type) and issubclass(item, BaseModel):
                seen.setdefault((item.__name__, "serialization"), (item, "serialization"))
    return list(seen.values())


def _schema_of(item: type[BaseModel] | Body) -> tuple[str, dict[str, Any]]:
    if isinstance(item, Body):
        return item.media_type, item.schema
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


def _operation(path: str, method: str, op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
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
    params += [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in op.request_headers.items()
    ]
    if params:
        out["parameters"] = params
    if op.body is not None:
        media, schema = _schema_of(op.body)
        out["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
    for status, item in op.responses.items():
        response: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if item is not None:
            media, schema = _schema_of(item)
            response["content"] = {media: {"schema": schema}}
        if status in op.headers:
            response["headers"] = {
                h: {"description": d, "schema": {"type": "string"}} for h, d in op.headers[status].items()
            }
        out["responses"][str(status)] = response
    errors = set(op.errors) | set(COMMON_ERRORS)
    if op.auth in ("bearer", "basic"):
        errors.add(401)
    for status in sorted(errors):
        out["responses"][str(status)] = {"$ref": f"#/components/responses/{status}"}
    if op.auth is None:
        out["security"] = []
    else:
        out["security"] = [{op.auth: []}]
    return out


def document(routes: Sequence[BaseRoute], *, title: str, version: str, server: str | None = None) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    operations: list[Operation] = []
    used_errors: set[int] = set()
    for route in routes:
        op = spec_of(route)
        if op is None or not isinstance(route, Route) or not route.include_in_schema:
            continue
        path = _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            item = _operation(path, method, op)
            paths.setdefault(path, {})[method.lower()] = item
            used_errors |= {int(s) for s, r in item["responses"].items() if "$ref" in r}
        operations.append(op)
    _, definitions = models_json_schema(_models(operations), ref_template=REF)
    schemas = {name: _drop_null_defaults(s) for name, s in definitions.get("$defs", {}).items()}
    for op in operations:
        if op.query is not None:  # what the inlined parameters refer to
            schemas.update(op.query.model_json_schema(ref_template=REF).get("$defs", {}))
    schemas["Problem"] = PROBLEM
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": "Personal task lists with accounts and bulk CSV/Excel imports. "
            "Errors are application/problem+json (RFC 9457).",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                str(status): {
                    "description": HTTPStatus(status).phrase,
                    "content": {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}},
                }
                for status in sorted(used_errors)
            },
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
    if server:
        doc["servers"] = [{"url": server}]
    return doc

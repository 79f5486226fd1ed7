"""The OpenAPI 3.1 document, generated from the route table and the pydantic models.

Each endpoint declares its operation with `@operation(...)` next to its code; `document(routes)` walks
the routes, so a route cannot exist without a description (a test walks the table too), and request
and response schemas are the very models that validate and shape the traffic.

Much of each operation is derived rather than declared (derived.py: error answers and headers; links.py:
what a client can do next with a resource it got), so a new endpoint is described fully by what it
declares (declarations.py); schemas.py turns the models into the document's schemas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Route

from service import idempotency
from service.http.openapi.declarations import Operation, Webhook, spec_of
from service.http.openapi.derived import (
    IDEMPOTENCY_TEXT,
    REQUEST_HEADERS,
    REQUEST_ID,
    error_response,
    header,
    implied_errors,
)
from service.http.openapi.links import add_links
from service.http.openapi.schemas import REF, content, drop_null_defaults, models, query_parameters
from service.http.ratelimit import POLICY_HEADERS

_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]+)?}")


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


def operation_id(method: str, path: str) -> str:
    return f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}"


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
        params += query_parameters(op.query)
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
        out["requestBody"] = {"required": op.body_required, "content": content(op.body)}
    for status, item in op.responses.items():
        response: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if item is not None:
            response["content"] = content(item)
        headers = {REQUEST_ID: header(REQUEST_ID, required=True)}
        headers |= {name: header(name, text) for name, text in op.headers.get(status, {}).items()}
        if op.idempotent:
            headers[idempotency.REPLAYED_HEADER] = header(idempotency.REPLAYED_HEADER)
        if op.rate_limited:
            headers |= {name: header(name) for name in POLICY_HEADERS}
        response["headers"] = headers
        out["responses"][str(status)] = response
    for status in sorted(implied_errors(op, auth_enforced)):
        name = f"{status}-limited" if op.rate_limited and status != 429 else str(status)
        out["responses"][str(status)] = {"$ref": f"#/components/responses/{name}"}
    out["security"] = [{op.auth: []}] if op.auth is not None and auth_enforced else []
    return out


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
    _, definitions = models_json_schema(models(operations, webhooks), ref_template=REF)
    schemas = {name: drop_null_defaults(s) for name, s in definitions.get("$defs", {}).items()}
    for op in operations:
        if op.query is not None:  # what the inlined parameters refer to
            schemas.update(op.query.model_json_schema(ref_template=REF).get("$defs", {}))
    schemas["Problem"] = PROBLEM
    add_links(paths, schemas)
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
                name: error_response(int(name.split("-")[0]), name.endswith("-limited")) for name in sorted(used_errors)
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

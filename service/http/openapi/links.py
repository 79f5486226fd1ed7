"""Links from an operation whose answer names a resource (its `id`) to every operation under
`<collection>/{id}`: what a client (and schemathesis' stateful phase) can do next with what it just
created or listed."""

from __future__ import annotations

from typing import Any


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


def add_links(paths: dict[str, dict[str, Any]], schemas: dict[str, Any]) -> None:
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

"""Request and response bodies in the document: the pydantic models, as validated or as serialised, made
honest about null; query models inlined as parameters."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

from service.http.openapi.declarations import Body, Content, Form, Operation, Webhook

REF = "#/components/schemas/{model}"


def variants(item: Content | tuple[Content, ...] | None) -> tuple[Content, ...]:
    if item is None:
        return ()
    return item if isinstance(item, tuple) else (item,)


def content(item: Content | tuple[Content, ...] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for variant in variants(item):
        media, schema = _schema_of(variant)
        out[media] = {"schema": schema}
        if isinstance(variant, Body) and variant.encoding:
            out[media]["encoding"] = variant.encoding
    return out


def models(operations: list[Operation], webhooks: Mapping[str, Webhook]) -> list[tuple[type[BaseModel], Any]]:
    """Every model the document names: request bodies as validated, responses as serialised (a model
    used both ways gets two schemas, as pydantic names them). Query models are inlined as parameters."""
    seen: dict[tuple[str, str], tuple[type[BaseModel], Literal["validation", "serialization"]]] = {}
    for op in operations:
        for item in variants(op.body):
            model = item.model if isinstance(item, Form) else item
            if isinstance(model, type) and issubclass(model, BaseModel):
                seen.setdefault((model.__name__, "validation"), (model, "validation"))
        for response in op.responses.values():
            for item in variants(response):
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


def drop_null_defaults(schema: dict[str, Any]) -> dict[str, Any]:
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


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
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

"""GET /openapi.json describes every route, and follows the configuration; a path answers for all its
methods (Allow on 405 and OPTIONS). That the running service keeps to the document is tests/http/test_contract.py."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from service.app import create_app
from service.http.openapi import spec_of

APP = create_app()
DOCUMENT = APP.state.openapi


def test_every_route_is_described_and_every_description_is_a_route():
    described = {(method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item}
    routed = set()
    for route in APP.routes:
        if isinstance(route, Route) and route.include_in_schema:
            assert spec_of(route) is not None, f"{route.path} has no @operation"
            routed |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
    assert described == routed


def test_the_document_is_valid_openapi_3_1():
    assert DOCUMENT["openapi"] == "3.1.0"
    validate(DOCUMENT)
    problem = DOCUMENT["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}


async def test_openapi_json_and_the_docs_page_are_served(client):
    served = await client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json()["paths"].keys() == DOCUMENT["paths"].keys()
    page = await client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    for asset in ("/docs/init.js", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        response = await client.get(asset)
        assert response.status_code == 200, asset
        assert response.headers["Content-Security-Policy"] == csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"


PATHS = {
    "/api/v1/tasks": "GET, HEAD, OPTIONS, POST",
    "/api/v1/tasks/00000000-0000-0000-0000-000000000000": "DELETE, GET, HEAD, OPTIONS, PATCH",
    "/api/v1/users/me": "DELETE, GET, HEAD, OPTIONS",
    "/api/v1/imports/00000000-0000-0000-0000-000000000000": "DELETE, GET, HEAD, OPTIONS",
    "/api/v1/categories/00000000-0000-0000-0000-000000000000": "DELETE, OPTIONS, PATCH",
    "/api/v1/auth/login": "OPTIONS, POST",
    # A path written out is never a value of another route's parameter (/api/v1/imports/{id})
    "/api/v1/imports/preview": "OPTIONS, POST",
}


@pytest.mark.parametrize("path", PATHS)
async def test_allow_names_every_method_a_path_serves_on_405_and_options(client, path):
    options = await client.options(path)
    assert options.status_code == 204 and options.headers["allow"] == PATHS[path]
    for method in ("PUT", "GET") if "GET" not in PATHS[path] else ("PUT",):
        refused = await client.request(method, path)
        assert refused.status_code == 405 and refused.headers["allow"] == PATHS[path]
    assert refused.headers["content-type"] == "application/problem+json"


def test_the_document_follows_the_configuration(settings):
    from dataclasses import replace

    secured = create_app(replace(settings, metrics_token="t" * 32)).state.openapi
    assert secured["paths"]["/metrics"]["get"]["security"] == [{"metrics": []}]
    assert "401" in secured["paths"]["/metrics"]["get"]["responses"]
    assert "/dev/mail" not in secured["paths"]  # APP_ENV=test: no development inbox
    # No METRICS_TOKEN: the metrics are open, and the document says so; development without SMTP_HOST
    # adds its inbox.
    development = create_app(replace(settings, metrics_token="", app_env="development", smtp_host="")).state.openapi
    for path in ("/metrics", "/api/v1/metrics"):
        assert development["paths"][path]["get"]["security"] == []
        assert "401" not in development["paths"][path]["get"]["responses"]
    assert "metrics" not in development["components"]["securitySchemes"]
    assert set(development["paths"]["/dev/mail"]["get"]["responses"]["200"]["content"]) == {
        "application/json",
        "text/html",
    }
    validate(development)
    with_smtp = create_app(replace(settings, app_env="development", smtp_host="mail.example.com")).state.openapi
    assert "/dev/mail" not in with_smtp["paths"]


def test_the_document_describes_what_clients_must_know():
    login = DOCUMENT["paths"]["/api/v1/auth/login"]["post"]
    assert set(login["requestBody"]["content"]) == {"application/json", "application/x-www-form-urlencoded"}
    assert {"401", "403", "429"} <= set(login["responses"])
    limited = DOCUMENT["components"]["responses"]["429"]["headers"]
    assert {"Retry-After", "RateLimit-Policy", "RateLimit", "X-Request-ID"} <= set(limited)
    create = DOCUMENT["paths"]["/api/v1/tasks"]["post"]
    assert {"Location", "Idempotent-Replayed", "X-Request-ID"} <= set(create["responses"]["201"]["headers"])
    key = next(p for p in create["parameters"] if p["name"] == "Idempotency-Key")
    assert key["schema"]["pattern"] == "^[\\x21-\\x7e]{1,255}$"
    # Links from what a client creates or lists to what it can do with it next
    links = create["responses"]["201"]["links"]
    assert set(links) == {"get_api_v1_tasks_id", "patch_api_v1_tasks_id", "delete_api_v1_tasks_id"}
    imports = DOCUMENT["paths"]["/api/v1/imports"]
    assert "get_api_v1_imports_id_errors" in imports["post"]["responses"]["202"]["links"]
    assert imports["get"]["responses"]["200"]["links"]["get_api_v1_imports_id_events"]["parameters"] == {
        "path.id": "$response.body#/items/0/id"
    }
    upload = imports["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["additionalProperties"] is False
    schemas = DOCUMENT["components"]["schemas"]
    password = schemas["RegisterIn"]["properties"]["password"]
    assert (password["minLength"], password["maxLength"]) == (8, 128)
    category = next(p for p in DOCUMENT["paths"]["/api/v1/tasks"]["get"]["parameters"] if p["name"] == "category")
    assert category["schema"]["type"] == "string" and "created" not in category["schema"]["description"]
    event = DOCUMENT["webhooks"]["import.failed"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert event == {"$ref": "#/components/schemas/ImportEvent"}
    assert {"completed_at", "finished_at", "error"} <= set(schemas["ImportEventData"]["properties"])

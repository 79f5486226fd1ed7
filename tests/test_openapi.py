"""GET /openapi.json describes every route, and the running service keeps its word: schemathesis sends
generated requests (valid and invalid) to every operation of a real uvicorn process and checks there is
no 5xx and every response matches the document."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.meta import negated_parameters
from starlette.routing import Route

from service.app import create_app
from service.http.openapi import spec_of
from tests.processes import Stack, stack_env
from tests.support import PASSWORD

APP = create_app()
DOCUMENT = APP.state.openapi
EMAIL = "schemathesis@example.com"
METRICS_TOKEN = "metrics-token-for-the-schemathesis-run"
# Deleting the account would leave every later generated request without a user to act for.
NOT_FUZZED = {("DELETE", "/api/v1/users/me")}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]

# Examples per operation: a quick pass in `make test`, many more in `make test-all`.
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))

schema = schemathesis.openapi.from_dict(DOCUMENT)


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


@pytest.fixture(scope="module")
def live(database: str, tmp_path_factory: pytest.TempPathFactory, smtp: Any) -> Iterator[dict[str, Any]]:
    """A real web process and an active account to act as."""
    import asyncio

    import asyncpg

    from service.accounts.passwords import hash_password_sync

    async def make_user() -> None:
        conn = await asyncpg.connect(database)
        try:
            await conn.execute("DELETE FROM accounts WHERE email = $1", EMAIL)
            await conn.execute(
                "INSERT INTO accounts (email, password_hash, is_active) VALUES ($1, $2, true)",
                EMAIL,
                hash_password_sync(PASSWORD, 4),
            )
        finally:
            await conn.close()

    asyncio.run(make_user())
    stack = Stack(stack_env(LOG_LEVEL="WARNING", METRICS_TOKEN=METRICS_TOKEN), tmp_path_factory.mktemp("schemathesis"))
    try:
        _, url = stack.web()
        tokens = httpx.post(f"{url}/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()
        yield {
            "url": url,
            "bearer": {"Authorization": f"Bearer {tokens['access_token']}"},
            "basic": {"Authorization": "Basic " + base64.b64encode(f"{EMAIL}:{PASSWORD}".encode()).decode()},
            "metrics": {"Authorization": f"Bearer {METRICS_TOKEN}"},
        }
    finally:
        stack.stop_all()


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_service_keeps_to_its_document(case: schemathesis.Case, live: dict[str, Any]) -> None:
    if (case.method.upper(), case.path) in NOT_FUZZED:
        return
    security = case.operation.definition.raw.get("security") or [{}]
    scheme = next(iter(security[0]), None) if security else None
    # A negative case that took the credentials away must be sent without them: putting them back would
    # turn it into a valid request and the service's 200 into a false "accepted negative data".
    mutated = {name.lower() for name, _ in negated_parameters(case._meta)}
    headers = {} if "authorization" in mutated else dict(live.get(scheme, {}))
    headers.update(case.headers or {})
    response = case.call(base_url=live["url"], headers=headers)
    case.validate_response(response, checks=CHECKS)

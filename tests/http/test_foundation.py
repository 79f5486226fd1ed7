"""Cross-cutting behaviour every endpoint shares: problem+json errors, request ids, health, headers."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from tests.support import AppClient, assert_problem, eventually, free_port


async def test_unknown_route_is_404_problem(client):
    problem = assert_problem(await client.get("/api/v1/nothing-here"), 404)
    assert problem["type"] == "about:blank"


async def test_wrong_method_is_405_problem_with_allow(client):
    response = await client.delete("/api/v1/auth/login")
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


async def test_liveness(client):
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_checks_postgres_and_redis_and_reports_the_upload_store(client):
    response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok", "store": "ok"}}


@pytest.fixture
async def broken_client(database, settings, request):
    """The app wired to a backing service that does not answer (a closed port)."""
    dead = f"127.0.0.1:{free_port()}"
    broken = (
        dataclasses.replace(settings, redis_url=f"redis://{dead}/0")
        if request.param == "redis"
        else dataclasses.replace(settings, database_url=f"postgresql://postgres@{dead}/nothing")
    )
    async with AppClient.start(broken) as app:
        yield app.http


@pytest.mark.parametrize("broken_client", ["redis", "postgres"], indirect=True)
async def test_readiness_is_503_naming_what_failed(broken_client, request):
    which = request.node.callspec.params["broken_client"]
    problem = assert_problem(await broken_client.get("/health/ready"), 503)
    assert which in problem["detail"]
    # The process itself is alive
    assert (await broken_client.get("/health/live")).status_code == 200


@pytest.mark.parametrize("broken_client", ["postgres"], indirect=True)
async def test_requests_fail_cleanly_with_503_while_postgres_is_down(broken_client):
    response = await broken_client.post("/api/v1/users", json={"email": "a@example.com", "password": "secret123"})
    problem = assert_problem(response, 503)
    assert "Traceback" not in response.text
    assert response.headers["Retry-After"]
    assert problem["type"] == "/problems/unavailable"


async def test_request_id_is_echoed_or_generated(client):
    echoed = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    generated = await client.get("/health/live")
    assert len(generated.headers["X-Request-ID"]) == 32
    # An unsafe id (it would be written into logs) is replaced, not echoed
    hostile = "<script>" + "x" * 200
    assert (await client.get("/health/live", headers={"X-Request-ID": hostile})).headers["X-Request-ID"] != hostile


async def test_responses_carry_security_headers_and_no_server_version(client):
    response = await client.get("/health/live")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "server" not in response.headers


async def test_unexpected_errors_are_a_bare_500_problem(client, app_client, monkeypatch):
    from service.accounts import service

    async def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "request_password_reset", boom)
    response = await client.post("/api/v1/auth/password-reset", json={"email": "a@example.com"})
    problem = assert_problem(response, 500)
    assert "secret internals" not in response.text
    assert problem["detail"] == "An unexpected error occurred"
    assert response.headers["X-Request-ID"]


async def test_closing_the_pool_never_waits_forever_for_a_connection_that_was_not_given_back(database, monkeypatch):
    from service import db as db_module

    monkeypatch.setattr(db_module, "CLOSE_WAIT", 0.5)
    db = db_module.Database(database)
    await db.connect()
    conn = await db._asyncpg_pool.acquire()  # checked out and never released, as a leak would leave it
    pid = conn.get_server_pid()
    async with asyncio.timeout(30):  # a guard against hanging for ever, not a figure: CLOSE_WAIT is 0.5 s
        await db.disconnect()
    probe = await asyncpg.connect(database)
    try:
        # The server notices the closed socket at once, or nearly
        gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1"
        await eventually(lambda: probe.fetchval(gone, pid), 5, "the checked-out connection to be closed")
    finally:
        await probe.close()

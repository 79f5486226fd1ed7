"""POST /api/v1/users: registration."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import PASSWORD, assert_problem, db_value, register


async def test_registration_creates_an_inactive_account_and_queues_its_activation_email(client, ctx):
    # When a new user registers with an untidy email
    response = await register(client, "  Alice@Example.COM ")
    # Then the account exists, inactive, under the normalised address
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "alice@example.com"
    assert body["is_active"] is False
    assert set(body) == {"id", "email", "is_active", "created_at"}
    # And an activation email waits in the outbox (sent by a worker, never by the request)
    kinds = await db_value(ctx, "SELECT array_agg(kind) FROM emails WHERE to_address = 'alice@example.com'")
    assert kinds == ["activation"]
    # And the password is stored only as a bcrypt hash
    stored = await db_value(ctx, "SELECT password_hash FROM accounts WHERE email = 'alice@example.com'")
    assert stored.startswith("$2") and PASSWORD not in stored


async def test_same_email_in_another_case_is_a_conflict(client):
    assert (await register(client, "bob@example.com")).status_code == 201
    problem = assert_problem(await register(client, "BOB@example.com "), 409)
    assert "already registered" in problem["detail"]


async def test_concurrent_registrations_of_one_email_create_one_account(client, ctx):
    responses = await asyncio.gather(*(register(client, "race@example.com") for _ in range(4)))
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
    assert await db_value(ctx, "SELECT count(*) FROM accounts") == 1


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": "a@example.com", "password": "short1"}, "password"),
        ({"email": "a@example.com", "password": "onlyletters"}, "password"),
        ({"email": "a@example.com", "password": "1234567890"}, "password"),
        ({"email": "a@example.com", "password": "a1" * 65}, "password"),
        ({"email": "a@example.com"}, "password"),
        ({"email": "a@example.com", "password": PASSWORD, "admin": True}, "admin"),
        ({"email": 42, "password": PASSWORD}, "email"),
    ],
)
async def test_invalid_registrations_are_422_naming_the_field_and_write_nothing(client, ctx, payload, field):
    problem = assert_problem(await client.post("/api/v1/users", json=payload), 422)
    assert field in [e["field"] for e in problem["errors"]]
    assert await db_value(ctx, "SELECT count(*) FROM accounts") == 0


async def test_password_limits_are_inclusive(client):
    assert (await register(client, "min@example.com", "abcdef12")).status_code == 201
    assert (await register(client, "max@example.com", "a1" * 64)).status_code == 201


async def test_malformed_json_is_400(client):
    response = await client.post("/api/v1/users", content=b'{"email": ', headers={"content-type": "application/json"})
    assert_problem(response, 400)


async def test_a_json_array_is_400(client):
    assert_problem(await client.post("/api/v1/users", json=[1, 2]), 400)


async def test_non_json_body_is_415(client):
    response = await client.post("/api/v1/users", content=b"email=a", headers={"content-type": "text/plain"})
    assert_problem(response, 415)


async def test_oversized_body_is_413_before_it_is_read(client, ctx):
    big = b'{"email": "a@example.com", "password": "' + b"x1" * 600_000 + b'"}'
    assert_problem(await client.post("/api/v1/users", content=big, headers={"content-type": "application/json"}), 413)
    assert await db_value(ctx, "SELECT count(*) FROM accounts") == 0


async def test_sixth_registration_from_one_address_within_an_hour_is_429(client):
    for i in range(5):
        response = await register(client, f"user{i}@example.com")
        assert response.status_code == 201
        assert response.headers["RateLimit-Policy"] == '"register";q=5;w=3600'
        assert response.headers["RateLimit"].startswith(f'"register";r={4 - i};t=')
    problem = assert_problem(await register(client, "user5@example.com"), 429)
    assert "5 per 3600" in problem["detail"]


async def test_limited_response_carries_retry_after_and_ratelimit_headers(client):
    for i in range(5):
        await register(client, f"user{i}@example.com")
    response = await register(client, "user5@example.com")
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 3600
    assert response.headers["RateLimit"].startswith('"register";r=0;t=')

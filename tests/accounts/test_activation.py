"""POST /api/v1/users/activate and POST /api/v1/users/activation-code."""

from __future__ import annotations

import asyncio

from tests.support import (
    activate,
    assert_problem,
    code_in,
    db_execute,
    db_value,
    deliver_pending_emails,
    register,
)

EMAIL = "carol@example.com"


async def _registered_with_code(client, ctx, smtp) -> str:
    assert (await register(client, EMAIL)).status_code == 201
    assert await deliver_pending_emails(ctx) == ["sent"]
    return code_in((await smtp.wait_for(EMAIL))[-1])


def _wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10_000:04d}"


async def _clear_rate_limits(redis_client) -> None:
    redis_client.flushdb()


async def test_the_emailed_code_activates_the_account_and_a_welcome_email_follows(client, ctx, smtp):
    code = await _registered_with_code(client, ctx, smtp)
    # Only a keyed digest of the code is stored
    stored = await db_value(ctx, "SELECT activation_code_hash FROM accounts WHERE email = $1", EMAIL)
    assert len(stored) == 32 and code.encode() not in stored
    response = await activate(client, EMAIL, code)
    assert response.status_code == 200
    assert response.json()["is_active"] is True and response.json()["email"] == EMAIL
    assert await deliver_pending_emails(ctx) == ["sent"]
    welcome = (await smtp.wait_for(EMAIL, 2))[-1]
    assert "active" in welcome["Subject"]


async def test_code_email_has_a_message_id_derived_from_its_row(client, ctx, smtp):
    await _registered_with_code(client, ctx, smtp)
    email_id = await db_value(ctx, "SELECT id FROM emails WHERE to_address = $1", EMAIL)
    assert smtp.to(EMAIL)[0]["Message-ID"] == f"<{email_id}@tasklane.test>"


async def test_wrong_code_is_400_and_says_how_many_attempts_remain(client, ctx, smtp):
    code = await _registered_with_code(client, ctx, smtp)
    problem = assert_problem(await activate(client, EMAIL, _wrong(code)), 400)
    assert "4 attempt(s) left" in problem["detail"]


async def test_expired_code_is_410(client, ctx, smtp):
    code = await _registered_with_code(client, ctx, smtp)
    # Given the 60 s have passed
    await db_execute(ctx, "UPDATE accounts SET activation_code_expires_at = now() - interval '1 second'")
    problem = assert_problem(await activate(client, EMAIL, code), 410)
    assert "expired" in problem["detail"]


async def test_code_is_valid_for_sixty_seconds(client, ctx, smtp):
    await _registered_with_code(client, ctx, smtp)
    ttl = await db_value(ctx, "SELECT extract(epoch FROM activation_code_expires_at - now()) FROM accounts")
    assert 55 < ttl <= 60


async def test_already_active_is_409(client, ctx, smtp):
    code = await _registered_with_code(client, ctx, smtp)
    assert (await activate(client, EMAIL, code)).status_code == 200
    assert_problem(await activate(client, EMAIL, code), 409)


async def test_bad_credentials_are_401_with_basic_challenge(client, ctx, smtp):
    code = await _registered_with_code(client, ctx, smtp)
    response = await activate(client, EMAIL, code, password="wrong-pass1")
    assert_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    missing = await client.post("/api/v1/users/activate", json={"code": code})
    assert_problem(missing, 401)
    assert missing.headers["WWW-Authenticate"].startswith("Basic")
    garbled = await client.post("/api/v1/users/activate", json={"code": code}, headers={"Authorization": "Basic !!"})
    assert_problem(garbled, 401)


async def test_malformed_code_is_422(client, ctx, smtp):
    await _registered_with_code(client, ctx, smtp)
    problem = assert_problem(await activate(client, EMAIL, "12a4"), 422)
    assert problem["errors"][0]["field"] == "code"


async def test_fourth_attempt_within_a_minute_is_429(client, ctx, smtp):
    code = await _registered_with_code(client, ctx, smtp)
    for _ in range(3):
        assert (await activate(client, EMAIL, _wrong(code))).status_code == 400
    response = await activate(client, EMAIL, code)
    assert_problem(response, 429)
    assert int(response.headers["Retry-After"]) <= 60
    assert await db_value(ctx, "SELECT is_active FROM accounts") is False


async def test_five_wrong_codes_void_the_code_even_the_right_one(client, ctx, smtp, redis_client):
    code = await _registered_with_code(client, ctx, smtp)
    statuses = []
    for _ in range(5):
        await _clear_rate_limits(redis_client)  # a minute passes between tries
        statuses.append((await activate(client, EMAIL, _wrong(code))).status_code)
    assert statuses == [400, 400, 400, 400, 410]
    await _clear_rate_limits(redis_client)
    problem = assert_problem(await activate(client, EMAIL, code), 410)
    assert "request a new one" in problem["detail"]


async def test_a_new_code_replaces_the_old_one(client, ctx, smtp):
    old = await _registered_with_code(client, ctx, smtp)
    response = await client.post("/api/v1/users/activation-code", auth=(EMAIL, "secret123"))
    assert response.status_code == 202
    # The old code dies at once, before the new email is even sent
    assert_problem(await activate(client, EMAIL, old), 410)
    assert await deliver_pending_emails(ctx) == ["sent"]
    new = code_in((await smtp.wait_for(EMAIL, 2))[-1])
    assert (await activate(client, EMAIL, new)).status_code == 200


async def test_new_code_requests_are_limited_to_three_a_minute(client, ctx, smtp):
    await _registered_with_code(client, ctx, smtp)
    statuses = [
        (await client.post("/api/v1/users/activation-code", auth=(EMAIL, "secret123"))).status_code for _ in range(4)
    ]
    assert statuses == [202, 202, 202, 429]


async def test_new_code_needs_credentials_and_an_inactive_account(client, ctx, smtp):
    code = await _registered_with_code(client, ctx, smtp)
    assert_problem(await client.post("/api/v1/users/activation-code"), 401)
    assert_problem(await client.post("/api/v1/users/activation-code", auth=(EMAIL, "nope-nope1")), 401)
    assert (await activate(client, EMAIL, code)).status_code == 200
    assert_problem(await client.post("/api/v1/users/activation-code", auth=(EMAIL, "secret123")), 409)


async def test_concurrent_right_codes_activate_once_and_queue_one_welcome(client, ctx, smtp):
    code = await _registered_with_code(client, ctx, smtp)
    responses = await asyncio.gather(*(activate(client, EMAIL, code) for _ in range(3)))
    assert sorted(r.status_code for r in responses) == [200, 409, 409]
    assert await db_value(ctx, "SELECT count(*) FROM emails WHERE kind = 'welcome'") == 1

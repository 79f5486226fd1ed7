"""Password reset by emailed single-use token."""

from __future__ import annotations

from tests.support import (
    active_account,
    assert_problem,
    db_execute,
    db_value,
    deliver_pending_emails,
    login,
    reset_token_in,
)

EMAIL = "erin@example.com"
NEW_PASSWORD = "brand-new-42"


async def _reset_token(client, ctx, smtp) -> str:
    response = await client.post("/api/v1/auth/password-reset", json={"email": EMAIL})
    assert response.status_code == 202
    assert await deliver_pending_emails(ctx) == ["sent"]
    return reset_token_in((await smtp.wait_for(EMAIL, 3))[-1])


async def test_reset_sets_a_new_password_and_ends_every_session(client, ctx, smtp):
    tokens = await active_account(client, ctx, smtp, EMAIL)
    token = await _reset_token(client, ctx, smtp)
    response = await client.post("/api/v1/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 204
    assert (await login(client, EMAIL)).status_code == 401
    assert (await login(client, EMAIL, NEW_PASSWORD)).status_code == 200
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)


async def test_reset_token_works_once(client, ctx, smtp):
    await active_account(client, ctx, smtp, EMAIL)
    token = await _reset_token(client, ctx, smtp)
    body = {"token": token, "password": NEW_PASSWORD}
    assert (await client.post("/api/v1/auth/password-reset/confirm", json=body)).status_code == 204
    assert_problem(await client.post("/api/v1/auth/password-reset/confirm", json=body), 410)


async def test_reset_token_expires_after_an_hour(client, ctx, smtp):
    await active_account(client, ctx, smtp, EMAIL)
    token = await _reset_token(client, ctx, smtp)
    lifetime = await db_value(ctx, "SELECT extract(epoch FROM expires_at - created_at) FROM password_reset_tokens")
    assert round(lifetime) == 3600
    await db_execute(ctx, "UPDATE password_reset_tokens SET expires_at = now() - interval '1 second'")
    body = {"token": token, "password": NEW_PASSWORD}
    assert_problem(await client.post("/api/v1/auth/password-reset/confirm", json=body), 410)


async def test_unknown_email_gets_the_same_answer_and_no_email(client, ctx, smtp):
    response = await client.post("/api/v1/auth/password-reset", json={"email": "ghost@example.com"})
    assert response.status_code == 202
    assert await db_value(ctx, "SELECT count(*) FROM emails") == 0


async def test_bad_reset_requests(client, ctx, smtp):
    await active_account(client, ctx, smtp, EMAIL)
    token = await _reset_token(client, ctx, smtp)
    confirm = "/api/v1/auth/password-reset/confirm"
    assert_problem(await client.post(confirm, json={"token": "forged", "password": NEW_PASSWORD}), 403)
    assert_problem(await client.post(confirm, json={"token": token, "password": "weak"}), 422)
    assert_problem(await client.post("/api/v1/auth/password-reset", json={"email": "nope"}), 422)
    # The weak-password attempt did not spend the token
    assert (await client.post(confirm, json={"token": token, "password": NEW_PASSWORD})).status_code == 204

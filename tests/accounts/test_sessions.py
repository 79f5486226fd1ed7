"""Login, access tokens, refresh-token rotation, logout and GET /users/me."""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import time
import uuid

import jwt

from tests.support import (
    PASSWORD,
    active_account,
    assert_problem,
    bearer,
    db_execute,
    db_value,
    login,
    register,
)

EMAIL = "dave@example.com"


async def test_login_returns_a_short_lived_jwt_and_a_refresh_token(client, ctx, smtp, settings):
    tokens = await active_account(client, ctx, smtp, EMAIL)
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == 900
    claims = jwt.decode(tokens["access_token"], settings.secret_key, algorithms=["HS256"])
    assert {"sub", "exp", "jti"} <= set(claims)
    assert claims["exp"] - time.time() <= 900
    assert len(tokens["refresh_token"]) >= 40
    # Only a digest of the refresh token is stored
    assert (
        await db_value(
            ctx, "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1", tokens["refresh_token"].encode()
        )
        == 0
    )


async def test_me_returns_the_account_behind_the_token(client, ctx, smtp):
    tokens = await active_account(client, ctx, smtp, EMAIL)
    response = await client.get("/api/v1/users/me", headers=bearer(tokens))
    assert response.status_code == 200
    assert response.json()["email"] == EMAIL and response.json()["is_active"] is True


async def test_login_accepts_the_oauth2_password_form(client, ctx, smtp):
    await active_account(client, ctx, smtp, EMAIL)
    response = await client.post("/api/v1/auth/login", data={"username": EMAIL.upper(), "password": PASSWORD})
    assert response.status_code == 200
    assert response.json()["token_type"] == "bearer"


async def test_wrong_password_and_unknown_email_look_the_same(client, ctx, smtp):
    await active_account(client, ctx, smtp, EMAIL)
    wrong_password = await login(client, EMAIL, "wrong-pass1")
    unknown_email = await login(client, "nobody@example.com", PASSWORD)
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json() == unknown_email.json()


async def test_wrong_email_takes_as_long_as_a_wrong_password(client, ctx, smtp, redis_client):
    await active_account(client, ctx, smtp, EMAIL)

    async def timed(address: str) -> float:
        redis_client.flushdb()
        started = time.perf_counter()
        await login(client, address, "wrong-pass1")
        return time.perf_counter() - started

    known = statistics.median([await timed(EMAIL) for _ in range(5)])
    unknown = statistics.median([await timed("nobody@example.com") for _ in range(5)])
    # Both pay for one bcrypt check; without the dummy hash, the unknown email would be ~10x faster.
    assert unknown > known / 3


async def test_inactive_account_cannot_log_in(client):
    assert (await register(client, EMAIL)).status_code == 201
    problem = assert_problem(await login(client, EMAIL), 403)
    assert "Activate" in problem["detail"]


async def test_sixth_login_attempt_a_minute_is_429(client):
    statuses = [(await login(client, "x@example.com", "wrong-pass1")).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]


async def test_login_validation_errors_are_422(client):
    assert_problem(await client.post("/api/v1/auth/login", json={"email": EMAIL}), 422)
    assert_problem(await client.post("/api/v1/auth/login", json={"email": EMAIL, "password": "x" * 2000}), 422)


async def test_refresh_rotates_and_the_old_token_dies(client, ctx, smtp):
    first = await active_account(client, ctx, smtp, EMAIL)
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get("/api/v1/users/me", headers=bearer(second))).status_code == 200
    # Presenting the rotated token again is reuse: 401 and the whole family is revoked
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}), 401)
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}), 401)


async def test_reuse_revokes_only_that_family(client, ctx, smtp):
    session_a = await active_account(client, ctx, smtp, EMAIL)
    session_b = (await login(client, EMAIL)).json()
    await client.post("/api/v1/auth/refresh", json={"refresh_token": session_a["refresh_token"]})
    await client.post("/api/v1/auth/refresh", json={"refresh_token": session_a["refresh_token"]})
    response = await client.post("/api/v1/auth/refresh", json={"refresh_token": session_b["refresh_token"]})
    assert response.status_code == 200


async def test_concurrent_refreshes_with_one_token_succeed_once(client, ctx, smtp):
    tokens = await active_account(client, ctx, smtp, EMAIL)
    body = {"refresh_token": tokens["refresh_token"]}
    responses = await asyncio.gather(*(client.post("/api/v1/auth/refresh", json=body) for _ in range(3)))
    assert sorted(r.status_code for r in responses) == [200, 401, 401]


async def test_expired_and_unknown_refresh_tokens_are_401(client, ctx, smtp):
    tokens = await active_account(client, ctx, smtp, EMAIL)
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": "not-a-token"}), 401)
    await db_execute(ctx, "UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    assert_problem(await client.post("/api/v1/auth/refresh", json={}), 422)


async def test_refresh_tokens_last_fourteen_days(client, ctx, smtp):
    await active_account(client, ctx, smtp, EMAIL)
    days = await db_value(ctx, "SELECT extract(epoch FROM expires_at - created_at) / 86400 FROM refresh_tokens")
    assert round(days) == 14


async def test_logout_revokes_the_refresh_token(client, ctx, smtp):
    tokens = await active_account(client, ctx, smtp, EMAIL)
    response = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
    # Logging out twice, or with an unknown token, is harmless
    assert (await client.post("/api/v1/auth/logout", json={"refresh_token": "whatever"})).status_code == 204
    assert_problem(await client.post("/api/v1/auth/logout", json={"token": "x"}), 422)


def _forge(claims: dict, key: str = "", alg: str = "HS256") -> str:
    if alg == "none":
        segments = [
            base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=").decode()
            for p in ({"alg": "none", "typ": "JWT"}, claims)
        ]
        return ".".join(segments) + "."
    return jwt.encode(claims, key, algorithm=alg)


async def test_missing_expired_tampered_and_unsigned_tokens_are_401(client, ctx, smtp, settings):
    tokens = await active_account(client, ctx, smtp, EMAIL)
    sub = jwt.decode(tokens["access_token"], settings.secret_key, algorithms=["HS256"])["sub"]
    now = int(time.time())
    good = {"sub": sub, "exp": now + 600, "jti": uuid.uuid4().hex, "typ": "access"}
    cases = {
        "missing": {},
        "not bearer": {"Authorization": f"Token {tokens['access_token']}"},
        "garbage": {"Authorization": "Bearer abc.def.ghi"},
        "alg none": {"Authorization": f"Bearer {_forge(good, alg='none')}"},
        "wrong key": {"Authorization": f"Bearer {_forge(good, 'another-key-entirely-0123456789abcdef')}"},
        "expired": {"Authorization": f"Bearer {_forge({**good, 'exp': now - 5}, settings.secret_key)}"},
        "no jti": {
            "Authorization": f"Bearer {_forge({'sub': sub, 'exp': now + 60, 'typ': 'access'}, settings.secret_key)}"
        },
        "refresh token": {"Authorization": f"Bearer {tokens['refresh_token']}"},
        "tampered": {"Authorization": f"Bearer {tokens['access_token'][:-3]}abc"},
    }
    for name, headers in cases.items():
        response = await client.get("/api/v1/users/me", headers=headers)
        assert response.status_code == 401, name
        assert response.headers["WWW-Authenticate"].startswith("Bearer"), name
        assert_problem(response, 401)


async def test_token_of_a_deleted_account_is_401(client, ctx, smtp):
    tokens = await active_account(client, ctx, smtp, EMAIL)
    assert (await client.delete("/api/v1/users/me", headers=bearer(tokens))).status_code == 204
    assert_problem(await client.get("/api/v1/users/me", headers=bearer(tokens)), 401)
    assert_problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)

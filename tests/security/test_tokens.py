"""Every Bearer route refuses every bad access token with 401 (problem+json, `WWW-Authenticate: Bearer`):
no token, garbage, `alg: none` in its spellings, a wrong key, another HMAC algorithm, expired, missing
claims, a refresh token (opaque, or a JWT claiming typ=refresh), a tampered payload, an unknown, inactive
or deleted account. A route that is not in PUBLIC is a Bearer route: a new route cannot escape the sweep."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import jwt
import pytest

from tests.security.conftest import route_table
from tests.support import PASSWORD, db_value, register

pytestmark = pytest.mark.security

API = "/api/v1"
# Routes that take no access token, and why.
PUBLIC = {
    ("GET", "/health/live"): "liveness",
    ("GET", "/health/ready"): "readiness",
    ("POST", "/api/v1/users"): "registration",
    ("POST", "/api/v1/users/activate"): "HTTP Basic",
    ("POST", "/api/v1/users/activation-code"): "HTTP Basic",
    ("POST", "/api/v1/auth/login"): "credentials in the body",
    ("POST", "/api/v1/auth/refresh"): "refresh token in the body",
    ("POST", "/api/v1/auth/logout"): "refresh token in the body",
    ("POST", "/api/v1/auth/password-reset"): "email in the body",
    ("POST", "/api/v1/auth/password-reset/confirm"): "reset token in the body",
    ("GET", "/api/v1/metrics"): "METRICS_TOKEN (its own test)",
    ("GET", "/metrics"): "METRICS_TOKEN (its own test)",
    ("GET", "/openapi.json"): "the API description",
    ("GET", "/docs"): "the API viewer",
    ("GET", "/docs/init.js"): "the API viewer",
    ("GET", "/docs/assets/{path}"): "the API viewer's static files",
}


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def claims(sub: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex, "typ": "access", **over}


def bad_tokens(secret: str, alice_id: str, alice_token: str, refresh: str, inactive_id: str) -> dict[str, str | None]:
    """name -> the Authorization header value (None: no header at all)."""
    ok = claims(alice_id)
    header, payload, signature = alice_token.split(".")
    forged_payload = b64(claims(str(uuid.uuid4())))
    out: dict[str, str | None] = {
        "no header": None,
        "empty bearer": "Bearer ",
        "garbage": "Bearer not.a.jwt",
        "basic scheme with valid credentials": "Basic "
        + base64.b64encode(f"alice@example.com:{PASSWORD}".encode()).decode(),
        "token without scheme": alice_token,
        "wrong key": "Bearer " + jwt.encode(ok, "another-secret-key-of-enough-length-0123456789", algorithm="HS256"),
        "empty key": "Bearer " + _signed(ok, b"", "HS256"),
        "HS512 with the right key": "Bearer " + _signed(ok, secret.encode(), "HS512"),
        "HS384 with the right key": "Bearer " + _signed(ok, secret.encode(), "HS384"),
        "expired": "Bearer " + jwt.encode(claims(alice_id, exp=int(time.time()) - 5), secret, algorithm="HS256"),
        "no exp": "Bearer " + jwt.encode({k: v for k, v in ok.items() if k != "exp"}, secret, algorithm="HS256"),
        "no typ": "Bearer " + jwt.encode({k: v for k, v in ok.items() if k != "typ"}, secret, algorithm="HS256"),
        "typ refresh": "Bearer " + jwt.encode(claims(alice_id, typ="refresh"), secret, algorithm="HS256"),
        "sub not a uuid": "Bearer " + jwt.encode(claims("alice"), secret, algorithm="HS256"),
        "unknown account": "Bearer " + jwt.encode(claims(str(uuid.uuid4())), secret, algorithm="HS256"),
        "inactive account": "Bearer " + jwt.encode(claims(inactive_id), secret, algorithm="HS256"),
        "refresh token as access token": "Bearer " + refresh,
        "payload swapped, signature kept": f"Bearer {header}.{forged_payload}.{signature}",
        "signature stripped": f"Bearer {header}.{payload}.",
        "random signature": f"Bearer {header}.{payload}.{b64(b'x' * 32)}",
    }
    for alg in ("none", "None", "NONE", "nOnE"):
        unsigned = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(ok)}"
        out[f"alg {alg}"] = f"Bearer {unsigned}."
        out[f"alg {alg}, signature kept"] = f"Bearer {unsigned}.{signature}"
    return out


def _signed(payload: dict[str, Any], key: bytes, alg: str) -> str:
    """A JWT signed by hand (PyJWT refuses short keys for some algorithms; an attacker does not)."""
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing = f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64(payload)}"
    return f"{signing}.{b64(hmac.new(key, signing.encode(), digest).digest())}"


def request_for(method: str, template: str) -> tuple[str, dict[str, Any]]:
    """A request that would be valid but for its token (bodies where a route reads one)."""
    path = template.replace("{id}", str(uuid.uuid4()))
    kwargs: dict[str, Any] = {}
    if method == "POST" and path == f"{API}/imports":
        kwargs["files"] = {"file": ("t.csv", b"title\nx\n", "text/csv")}
    elif method in ("POST", "PATCH"):
        kwargs["json"] = {"name": "n"} if "categories" in path else {"title": "t"}
    return path, kwargs


async def test_every_bearer_route_refuses_every_bad_token(alice, client, ctx, settings, report):
    bearer_routes = [r for r in route_table(settings) if r not in PUBLIC]
    assert bearer_routes, "no Bearer route found"
    me = (await client.get(f"{API}/users/me", headers=alice.headers)).json()
    token = alice.headers["Authorization"].removeprefix("Bearer ")
    login = await client.post(f"{API}/auth/login", json={"email": alice.email, "password": PASSWORD})
    assert (await register(client, "inactive@example.com")).status_code == 201
    inactive = await db_value(ctx, "SELECT id FROM accounts WHERE email = $1", "inactive@example.com")
    tokens = bad_tokens(settings.secret_key, me["id"], token, login.json()["refresh_token"], str(inactive))

    # The control: with alice's valid token no Bearer route answers 401 (so a 401 below means refusal).
    for method, template in bearer_routes:
        path, kwargs = request_for(method, template)
        if method == "DELETE" and template == f"{API}/users/me":
            continue  # would end the test's account
        response = await client.request(method, path, headers=alice.headers, **kwargs)
        assert response.status_code != 401, (method, template, response.text)

    problems: list[str] = []

    async def sweep(named: dict[str, str | None], routes: list[tuple[str, str]]) -> int:
        n = 0
        for method, template in routes:
            path, kwargs = request_for(method, template)
            for name, value in named.items():
                headers = {} if value is None else {"Authorization": value}
                response = await client.request(method, path, headers=headers, **kwargs)
                n += 1
                ok = (
                    response.status_code == 401
                    and response.headers.get("content-type", "").startswith("application/problem+json")
                    and response.headers.get("www-authenticate", "").startswith("Bearer")
                )
                if not ok:
                    problems.append(f"{method} {template} with {name}: {response.status_code} {response.text[:100]}")
        return n

    sent = await sweep(tokens, bearer_routes)

    # A valid token of an account deleted since: refused everywhere, though its signature still checks
    # out (and the token was verified, so cached, before the deletion).
    assert (await client.get(f"{API}/users/me", headers=alice.headers)).status_code == 200
    assert (await client.get(f"{API}/tasks", headers=alice.headers)).status_code == 200
    assert (await client.delete(f"{API}/users/me", headers=alice.headers)).status_code == 204
    sent += await sweep({"token of a deleted account": alice.headers["Authorization"]}, bearer_routes)

    report(
        "bad tokens on every Bearer route",
        bearer_routes=len(bearer_routes),
        kinds_of_bad_token=len(tokens) + 1,
        requests=sent,
        not_401=len(problems),
    )
    assert not problems, "\n".join(problems[:25])

"""HTTP endpoints of the accounts API: parse, check limits, call the service, answer."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.accounts import service
from service.accounts.auth import basic_credentials, current_account
from service.accounts.schemas import (
    Accepted,
    ActivateIn,
    LoginForm,
    LoginIn,
    PasswordResetConfirmIn,
    PasswordResetIn,
    RefreshIn,
    RegisterIn,
    TokensOut,
    UserOut,
)
from service.addresses import canonical_email
from service.http import ratelimit
from service.http.bodies import declared_length, media_type, read_form, read_json
from service.http.clients import client_ip
from service.http.openapi import Form, operation
from service.http.routing import API_PREFIX
from service.json import json_response


def _ip(request: Request) -> str:
    return client_ip(request, request.state.settings.trusted_proxies)


def _limit(request: Request) -> int:
    return request.state.settings.max_json_bytes


# The answers are shaped by the very models the OpenAPI document shows.
def _user(account: service.Account) -> dict[str, Any]:
    return UserOut.model_validate(account, from_attributes=True).model_dump()


def _tokens(tokens: service.Tokens) -> dict[str, Any]:
    return TokensOut.model_validate(tokens, from_attributes=True).model_dump()


@operation(
    summary="Register an account",
    tag="accounts",
    body=RegisterIn,
    responses={201: UserOut},
    errors=(409,),
    auth=None,
    rate_limited=True,
    headers={201: {"Location": "The account: /api/v1/users/me once logged in"}},
    description="Creates an inactive account and emails a 4-digit activation code (valid 60 s). "
    "Limited to 5 per hour per client address.",
)
async def register(request: Request) -> Response:
    await ratelimit.enforce(request, ratelimit.REGISTER, _ip(request))
    data = await read_json(request, RegisterIn, _limit(request))
    account = await service.register(request.state.ctx, data)
    return json_response(_user(account), status_code=201, headers={"Location": f"{API_PREFIX}/users/me"})


@operation(
    summary="Activate with the emailed code",
    tag="accounts",
    body=ActivateIn,
    responses={200: UserOut},
    errors=(400, 409, 410),
    auth="basic",
    rate_limited=True,
    description="Wrong code: 400; expired or voided (after 5 wrong codes): 410. 3 attempts a minute per email.",
)
async def activate(request: Request) -> Response:
    creds = basic_credentials(request)
    await ratelimit.enforce(request, ratelimit.ACTIVATE, canonical_email(creds.email))
    data = await read_json(request, ActivateIn, _limit(request))
    account = await service.activate(request.state.ctx, creds.email, creds.password, data.code)
    return json_response(_user(account))


@operation(
    summary="Email a new activation code",
    tag="accounts",
    responses={202: Accepted},
    errors=(409,),
    auth="basic",
    rate_limited=True,
)
async def activation_code(request: Request) -> Response:
    creds = basic_credentials(request)
    await ratelimit.enforce(request, ratelimit.ACTIVATION_CODE, canonical_email(creds.email))
    await service.resend_activation_code(request.state.ctx, creds.email, creds.password)
    return json_response({"detail": "A new activation code is on its way"}, status_code=202)


@operation(
    summary="Log in",
    tag="auth",
    body=(LoginIn, Form(LoginForm)),
    # No body is no credentials: 401. (A body that is required and has two media types also makes
    # openapi-python-client 0.27-0.29 write a client that does not import: its issue #1451.)
    body_required=False,
    responses={200: TokensOut},
    errors=(401, 403),
    auth=None,
    rate_limited=True,
    headers={200: {"Cache-Control": "no-store"}},
    description="JSON {email, password}, or the OAuth2 password grant's form (username, password, "
    "grant_type=password). Wrong email or password, or none: 401. Not yet activated: 403. "
    "5 per minute per client address.",
)
async def login(request: Request) -> Response:
    await ratelimit.enforce(request, ratelimit.LOGIN, _ip(request))
    if not declared_length(request) and "transfer-encoding" not in request.headers:
        raise service.BadCredentials("Send your email and password", scheme="Bearer")
    if media_type(request) == "application/x-www-form-urlencoded":
        data = (await read_form(request, LoginForm, _limit(request))).login()
    else:
        data = await read_json(request, LoginIn, _limit(request))
    tokens = await service.login(request.state.ctx, data)
    return json_response(_tokens(tokens), headers={"Cache-Control": "no-store"})


@operation(
    summary="Rotate a refresh token",
    tag="auth",
    body=RefreshIn,
    responses={200: TokensOut},
    errors=(401,),
    auth=None,
    headers={200: {"Cache-Control": "no-store"}},
    description="The presented token dies. Presenting an already rotated token revokes its whole session.",
)
async def refresh(request: Request) -> Response:
    data = await read_json(request, RefreshIn, _limit(request))
    tokens = await service.refresh(request.state.ctx, data.refresh_token)
    return json_response(_tokens(tokens), headers={"Cache-Control": "no-store"})


@operation(
    summary="Log out",
    tag="auth",
    body=RefreshIn,
    responses={204: None},
    auth=None,
    description="Revokes the refresh token and its session. Access tokens already issued stay valid until "
    "they expire (15 minutes).",
)
async def logout(request: Request) -> Response:
    data = await read_json(request, RefreshIn, _limit(request))
    await service.logout(request.state.ctx, data.refresh_token)
    return Response(status_code=204)


@operation(summary="The current account", tag="accounts", responses={200: UserOut})
async def me(request: Request) -> Response:
    account = await current_account(request)
    return json_response(_user(account))


@operation(summary="Delete the current account and everything it owns", tag="accounts", responses={204: None})
async def delete_me(request: Request) -> Response:
    account = await current_account(request)
    await service.delete_account(request.state.ctx, account.id)
    return Response(status_code=204)


@operation(
    summary="Email a password-reset token",
    tag="auth",
    body=PasswordResetIn,
    responses={202: Accepted},
    auth=None,
    rate_limited=True,
    description="Answers 202 whether or not an account uses the email.",
)
async def password_reset(request: Request) -> Response:
    await ratelimit.enforce(request, ratelimit.PASSWORD_RESET, _ip(request))
    data = await read_json(request, PasswordResetIn, _limit(request))
    await service.request_password_reset(request.state.ctx, data.email)
    return json_response({"detail": "If an account uses this email, a reset link is on its way"}, status_code=202)


@operation(
    summary="Set a new password with a reset token",
    tag="auth",
    body=PasswordResetConfirmIn,
    responses={204: None},
    errors=(403, 410),
    auth=None,
    description="An unknown token: 403; one already used or expired: 410. Access tokens issued before stay "
    "valid until they expire (15 minutes); every refresh token of the account is revoked.",
)
async def password_reset_confirm(request: Request) -> Response:
    data = await read_json(request, PasswordResetConfirmIn, _limit(request))
    await service.confirm_password_reset(request.state.ctx, data)
    return Response(status_code=204)


routes = [
    Route("/users", register, methods=["POST"]),
    Route("/users/activate", activate, methods=["POST"]),
    Route("/users/activation-code", activation_code, methods=["POST"]),
    Route("/users/me", me, methods=["GET"]),
    Route("/users/me", delete_me, methods=["DELETE"]),
    Route("/auth/login", login, methods=["POST"]),
    Route("/auth/refresh", refresh, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
    Route("/auth/password-reset", password_reset, methods=["POST"]),
    Route("/auth/password-reset/confirm", password_reset_confirm, methods=["POST"]),
]

"""Who is calling: the account behind a request's Authorization header (Bearer access tokens, HTTP Basic).

It lives with accounts, which owns the tokens and the table it checks them against; routes of every domain
use it, so the arrows point one way (tasks, imports -> accounts -> http)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from uuid import UUID

from starlette.requests import Request

from service.accounts import service as accounts
from service.accounts.tokens import InvalidToken, decode_access_token
from service.errors import Unauthorized
from service.logs import user_id_var


@dataclass(frozen=True)
class BasicCredentials:
    email: str
    password: str


def _authorization(request: Request, scheme: str) -> str | None:
    header = request.headers.get("authorization", "")
    given, _, value = header.partition(" ")
    if given.lower() != scheme.lower() or not value.strip():
        return None
    return value.strip()


def basic_credentials(request: Request) -> BasicCredentials:
    value = _authorization(request, "basic")
    if value is None:
        raise Unauthorized("Send your email and password with HTTP Basic authentication", scheme="Basic")
    try:
        email, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        sep = ""
    if not sep:
        raise Unauthorized("Malformed Basic credentials", scheme="Basic")
    return BasicCredentials(email, password)


def bearer_account_id(request: Request) -> UUID:
    token = _authorization(request, "bearer")
    if token is None:
        raise Unauthorized("Send an access token as 'Authorization: Bearer <token>'")
    try:
        return decode_access_token(request.state.settings.secret_key, token)
    except InvalidToken:
        raise Unauthorized("The access token is invalid or expired") from None


def token_user_id(request: Request) -> UUID:
    """The account id a valid Bearer token names, recorded for the request log, WITHOUT checking that
    the account still exists: the caller must. Hot paths fold that check into their own query and
    answer `unauthorized()` when it fails; everything else uses `current_account`."""
    account_id = bearer_account_id(request)
    request.state.user_id = account_id
    user_id_var.set(str(account_id))
    return account_id


def unauthorized() -> Unauthorized:
    """What a valid token for an account that is gone or inactive gets."""
    return Unauthorized("The access token is invalid or expired")


async def current_account(request: Request) -> accounts.Account:
    """The active account behind the Bearer token; 401 for a bad token or an account that is gone."""
    account_id = bearer_account_id(request)
    account = await accounts.get_account(request.state.db, account_id)
    if account is None or not account.is_active:
        raise unauthorized()
    request.state.user_id = account.id
    user_id_var.set(str(account.id))
    return account

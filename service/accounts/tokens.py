"""Access tokens (short-lived JWTs), opaque refresh and reset tokens, and activation codes.

Only digests of refresh tokens, reset tokens and codes are stored. Codes are keyed with SECRET_KEY:
a 4-digit code has 10,000 values, so a plain hash of it would be reversed by trying them all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from uuid import UUID

import jwt

ALGORITHM = "HS256"


@dataclass(frozen=True)
class AccessToken:
    token: str
    expires_in: int


class InvalidToken(Exception):
    pass


def create_access_token(secret: str, account_id: UUID, ttl: int) -> AccessToken:
    now = int(time.time())
    claims = {"sub": str(account_id), "iat": now, "exp": now + ttl, "jti": uuid.uuid4().hex, "typ": "access"}
    return AccessToken(jwt.encode(claims, secret, algorithm=ALGORITHM), ttl)


# Tokens verified recently, by (secret, exact token text) -> (account id, exp). A client sends the same
# access token with every request for its 15 minutes; checking it once instead of on each request
# spares hot endpoints PyJWT's parsing and signature check. The key is the whole token, signature included, so only a
# token that passed the full check can hit; the expiry is still checked on every hit.
_verified: dict[tuple[str, str], tuple[UUID, int]] = {}
VERIFIED_CACHE_SIZE = 4096


def decode_access_token(secret: str, token: str) -> UUID:
    key = (secret, token)
    hit = _verified.get(key)
    if hit is not None:
        if hit[1] > time.time():
            return hit[0]
        _verified.pop(key, None)
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "exp", "jti", "typ"]})
        if claims["typ"] != "access":
            raise InvalidToken("not an access token")
        account_id, expires = UUID(claims["sub"]), int(claims["exp"])
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise InvalidToken(str(exc)) from None
    if len(_verified) >= VERIFIED_CACHE_SIZE:
        _verified.pop(next(iter(_verified)), None)  # the oldest entry
    _verified[key] = (account_id, expires)
    return account_id


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_code() -> str:
    return f"{secrets.randbelow(10_000):04d}"


def code_digest(secret: str, account_id: UUID, code: str) -> bytes:
    return hmac.new(secret.encode(), f"{account_id}:{code}".encode(), hashlib.sha256).digest()


def code_matches(secret: str, account_id: UUID, code: str, stored: bytes) -> bool:
    return hmac.compare_digest(code_digest(secret, account_id, code), stored)

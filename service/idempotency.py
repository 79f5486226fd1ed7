"""Idempotency-Key: a client that retries a POST with the same key gets the first response back
(same status, body and Location) instead of a second resource.

Keys are per user and live 24 hours. A request is identified by a fingerprint of its method, path and
body: the same key with another request is refused (422). Errors are never stored: a request that
failed (4xx raised, 5xx) left nothing behind, so a retry simply runs again.

Use, inside the caller's transaction (PostgreSQL READ COMMITTED, the default):

    async with ctx.db.transaction():
        replay = await idempotency.claim(ctx, user_id, key, fingerprint)
        if replay is not None:
            return replay
        ...do the work...
        outcome = idempotency.Outcome.json(201, body, {"Location": ...})
        await idempotency.store(ctx, user_id, key, outcome)
    return outcome

`run_once` does exactly that around an action, and `once` is the whole flow every creating endpoint
uses: with the request's `Key` (or none), the canonical form of what was sent, and the action.

The claim inserts the key row first: a concurrent request with the same key blocks on its primary key
until the first commits (then replays its response) or rolls back (then does the work itself), so N
identical concurrent requests do the work once. An upload that must not hold a transaction open while
it streams can compute its fingerprint from the streamed bytes first, then claim/work/store in one
short transaction; a claim committed without a stored response (status NULL) answers 409 to others
until it is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from service.context import Context
from service.db import Queries
from service.errors import BadRequest, Conflict, Unauthorized, Unprocessable
from service.json import dumps

Q = Queries("idempotency")
HEADER = "Idempotency-Key"
TTL_SECONDS = 24 * 3600
REPLAYED_HEADER = "Idempotent-Replayed"
# Visible ASCII, 1 to 255 characters: room for a UUID, a ULID or a client's own structured key.
KEY_PATTERN = r"[\x21-\x7e]{1,255}"
_VALID_KEY = re.compile(KEY_PATTERN)


class InvalidKey(BadRequest):
    slug, title = "invalid-idempotency-key", "Invalid Idempotency-Key"


class KeyReused(Unprocessable):
    slug, title = "idempotency-key-reused", "Idempotency-Key used for another request"


class KeyInUse(Conflict):
    slug, title = "idempotency-key-in-use", "Request with this Idempotency-Key still running"


@dataclass(frozen=True)
class Outcome:
    """A response as stored under a key: status, rendered body and the headers worth replaying."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False

    @classmethod
    def json(cls, status: int, content: Any, headers: dict[str, str] | None = None) -> Outcome:
        return cls(status, dumps(content), {"content-type": "application/json", **(headers or {})})

    def response(self) -> Response:
        headers = dict(self.headers)
        if self.replayed:
            headers[REPLAYED_HEADER] = "true"
        return Response(self.body, status_code=self.status, headers=headers)


@dataclass(frozen=True)
class Key:
    """An Idempotency-Key as a request sent it, with that request's method and path: a retry is the same
    request only if those match too."""

    value: str
    method: str
    path: str

    def fingerprint(self, body: bytes) -> bytes:
        return fingerprint(self.method, self.path, body)


def key_from(request: Request) -> Key | None:
    """The request's Idempotency-Key, None when not sent; InvalidKey (400) when malformed."""
    values = request.headers.getlist(HEADER)
    if not values:
        return None
    if len(values) > 1 or not _VALID_KEY.fullmatch(values[0]):
        raise InvalidKey(f"{HEADER} must be sent once, as 1 to 255 visible ASCII characters")
    return Key(values[0], request.method, request.url.path)


def fingerprint(method: str, path: str, body: bytes) -> bytes:
    """What makes two requests 'the same' for a key. Give `body` in a canonical form (e.g. JSON with
    sorted keys, or the digest of an uploaded file) so that formatting alone does not count."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


async def claim(ctx: Context, user_id: UUID, key: str, digest: bytes) -> Outcome | None:
    """Inside the caller's transaction: None when this request owns the key (do the work, then `store`
    before committing), or the stored response to replay. KeyReused (422) when the key was used for
    another request, KeyInUse (409) when that request claimed it in a committed transaction of its
    own and has not stored its response yet."""
    for _ in range(3):
        try:
            claimed = await ctx.db.fetch_val(Q.claim_key, user_id=user_id, key=key, fingerprint=digest, ttl=TTL_SECONDS)
        except asyncpg.ForeignKeyViolationError:
            raise Unauthorized("The access token is invalid or expired") from None  # the account just went
        if claimed:
            return None
        # A live key: this statement's fresh snapshot sees the transaction we may have waited for.
        row = await ctx.db.fetch_one(Q.stored_response, user_id=user_id, key=key)
        if row is None:
            continue  # purged in between: claim again
        if not hmac.compare_digest(row["fingerprint"], digest):
            raise KeyReused(f"This {HEADER} was already used for a different request; use a new key")
        if row["status"] is None:
            raise KeyInUse(f"A request with this {HEADER} is still being processed; retry later")
        return Outcome(row["status"], row["body"], row["headers"], replayed=True)
    raise KeyInUse(f"A request with this {HEADER} is still being processed; retry later")


async def store(ctx: Context, user_id: UUID, key: str, outcome: Outcome) -> None:
    """Inside the transaction that claimed the key: remember its response."""
    await ctx.db.execute(
        Q.store_response, user_id=user_id, key=key, status=outcome.status, headers=outcome.headers, body=outcome.body
    )


async def run_once(
    ctx: Context, user_id: UUID, key: str, digest: bytes, action: Callable[[], Awaitable[Outcome]]
) -> Outcome:
    """Run `action` in a transaction unless a request with this key already did; its outcome either way."""
    async with ctx.db.transaction():
        replay = await claim(ctx, user_id, key, digest)
        if replay is not None:
            return replay
        outcome = await action()
        await store(ctx, user_id, key, outcome)
    return outcome


async def once(
    ctx: Context,
    user_id: UUID,
    key: Key | None,
    body: Callable[[], bytes],
    action: Callable[[], Awaitable[Outcome]],
) -> Outcome:
    """The Idempotency-Key flow of a creating request. Without a key, `action` simply runs. With one, it
    runs once per user and key, in the transaction that claims the key: a retry of the same request
    (`body()` gives what was sent in a canonical form) gets the first outcome back, marked `replayed`."""
    if key is None:
        return await action()
    return await run_once(ctx, user_id, key.value, key.fingerprint(body()), action)


async def purge_expired(ctx: Context) -> int:
    """Delete expired keys (claim already ignores them); for a periodic job. Returns how many."""
    return await ctx.db.fetch_val(Q.purge_expired_keys, ttl=TTL_SECONDS)

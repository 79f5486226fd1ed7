"""Keyset pages and their opaque cursors.

A page is the rows after a position in a total order (a sort key, then the id), fetched with at least one
row more than it shows: that extra row says a next page exists. Its cursor holds the sort-key values of
the last row shown, so the next page starts strictly after it and rows added or deleted meanwhile never
make a page skip or repeat one.

A cursor is base64url(JSON values || 16-byte tag). The tag is a keyed BLAKE2b over scope and values,
under a key of its own derived from SECRET_KEY, so it cannot be forged; the scope (who asked, which
listing, which sort and filters) binds it to its listing, so it cannot be replayed on another. Nothing
secret is inside (the caller's own sort keys): it is signed, not encrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Generic, NamedTuple, TypeVar

import orjson

from service.errors import BadRequest

TAG_BYTES = 16
MAX_CURSOR_CHARS = 512
T = TypeVar("T")
R = TypeVar("R")


class InvalidCursor(BadRequest):
    slug, title = "invalid-cursor", "Invalid cursor"


@lru_cache(maxsize=4)
def _key(secret: str) -> bytes:
    # A key of its own, so a cursor tag can never double as any other MAC made with SECRET_KEY.
    return hmac.new(secret.encode(), b"tasklane/cursor/v1", hashlib.sha256).digest()


def _tag(secret: str, scope: bytes, payload: bytes) -> bytes:
    return hashlib.blake2b(scope + b"\x00" + payload, key=_key(secret), digest_size=TAG_BYTES).digest()


def encode(secret: str, scope: bytes, values: list[Any]) -> str:
    payload = orjson.dumps(values)
    return base64.urlsafe_b64encode(payload + _tag(secret, scope, payload)).rstrip(b"=").decode()


def decode(secret: str, scope: bytes, cursor: str) -> list[Any]:
    """The values of a cursor made by `encode` for this same scope; InvalidCursor (400) otherwise."""
    invalid = InvalidCursor(
        "The cursor is malformed, tampered with, or belongs to another query; start from the first page"
    )
    if len(cursor) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise invalid from None
    payload, tag = raw[:-TAG_BYTES], raw[-TAG_BYTES:]
    if len(raw) <= TAG_BYTES or not hmac.compare_digest(tag, _tag(secret, scope, payload)):
        raise invalid
    try:
        values = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise invalid from None
    if not isinstance(values, list):
        raise invalid
    return values


class Page(NamedTuple, Generic[R]):
    items: list[R]
    next_cursor: str | None


@dataclass(frozen=True)
class Keyset:
    """The cursors of one listing for one caller: signed with `secret`, bound to `scope`.

    keyset = Keyset(secret, scope)
    after = keyset.position(cursor, read)       # None: the first page
    rows = <fetch limit + 1 rows, after `after` when given>
    page = keyset.page(rows, limit, key)        # key(row) -> the values `read` reads back
    """

    secret: str
    scope: bytes

    def position(self, cursor: str | None, read: Callable[[list[Any]], T]) -> T | None:
        """Where a page starts: None without a cursor, else `read` of the cursor's values. InvalidCursor
        (400) for a cursor made for another scope or tampered with, or whose values `read` refuses
        (ValueError or TypeError: signed by us, so only possible across a change of format)."""
        if cursor is None:
            return None
        values = decode(self.secret, self.scope, cursor)
        try:
            return read(values)
        except (ValueError, TypeError, OverflowError):
            raise InvalidCursor("The cursor is no longer valid; start from the first page") from None

    def page(self, rows: Sequence[R], limit: int, key: Callable[[R], list[Any]]) -> Page[R]:
        """The first `limit` of `rows` (fetched with at least one more), and the cursor after the last of
        them when there is more."""
        items = list(rows[:limit])
        if len(rows) > limit:
            return Page(items, encode(self.secret, self.scope, key(items[-1])))
        return Page(items, None)

"""Opaque keyset cursors: the sort-key values of the last row a client saw, signed so they cannot be
forged, and bound to a scope (who asked, which sort, which filters) so they cannot be replayed elsewhere.

A cursor is base64url(JSON values || 16-byte HMAC-SHA256 tag), with the tag over scope and values under
a key derived from SECRET_KEY. Nothing secret is inside (the caller's own sort keys), so it is signed,
not encrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from functools import lru_cache
from typing import Any

import orjson

from service.errors import BadRequest

TAG_BYTES = 16
MAX_CURSOR_CHARS = 512


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

"""Webhook signatures, as Standard Webhooks (https://www.standardwebhooks.com) defines them.

`webhook-id` is the event row's id and stays the same on every attempt, so receivers can drop duplicates;
`webhook-timestamp` is the time of each attempt (receivers refuse timestamps more than 5 minutes away,
and a retry after a long Retry-After or a relay re-drive can come later than that); `webhook-signature`
is `v1,<base64 HMAC-SHA256>` of `{id}.{timestamp}.{body}` keyed with WEBHOOK_SECRET. The body is the
stored payload serialised with sorted keys, so every attempt of one event sends the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any

import orjson

from service.config import webhook_key


def sign(secret_whsec: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value for one attempt: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    key = webhook_key(secret_whsec)
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"v1,{base64.b64encode(mac).decode()}"


def signed_headers(secret_whsec: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret_whsec, msg_id, timestamp, body),
    }


def encode_body(payload: Mapping[str, Any]) -> bytes:
    """The bytes sent for a stored payload: the same on every attempt."""
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)

"""The development inbox. With APP_ENV=development and no SMTP_HOST, the worker prints each email to its log
and also keeps the last ones in Redis, shared by every process, where GET /dev/mail (the web process) lists
them: a developer reads an activation code there, or a script does, instead of digging in the worker log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis

from service.addresses import canonical_email

KEY = "tasklane:dev:mail"
KEEP = 50  # the newest emails kept
TTL = 7 * 24 * 3600  # seconds; a development machine's Redis is not a mail archive


async def keep(client: aioredis.Redis, item: dict[str, Any]) -> None:
    entry = {**item, "created_at": datetime.now(UTC).isoformat()}
    async with client.pipeline(transaction=True) as pipe:
        pipe.lpush(KEY, orjson.dumps(entry, default=str))
        pipe.ltrim(KEY, 0, KEEP - 1)
        pipe.expire(KEY, TTL)
        await pipe.execute()


async def latest(client: aioredis.Redis, to: str | None = None) -> list[dict[str, Any]]:
    """The kept emails, newest first; with `to`, only those to that address (case-insensitively)."""
    items = [orjson.loads(raw) for raw in await client.lrange(KEY, 0, KEEP - 1)]
    if to is not None:
        wanted = canonical_email(to)
        items = [item for item in items if canonical_email(item["to"]) == wanted]
    return items

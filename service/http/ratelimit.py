"""Sliding-window rate limits in Redis, shared by every web process.

One Lua script prunes, counts and records a hit atomically, using Redis' clock so processes on hosts
with skewed clocks agree. Responses carry the IETF RateLimit-Policy / RateLimit fields
(draft-ietf-httpapi-ratelimit-headers, structured-field syntax) and, when refused, Retry-After.
A Redis outage fails open: availability beats throttling for the minutes Redis is away.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions
from starlette.requests import Request

from service.errors import TooManyRequests

log = logging.getLogger("tasklane.ratelimit")

SLIDING_WINDOW = """
local key = KEYS[1]
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, now, now .. '-' .. ARGV[3])
  redis.call('PEXPIRE', key, window)
  count = count + 1
  allowed = 1
end
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {allowed, count, reset}
"""


@dataclass(frozen=True)
class Limit:
    name: str
    limit: int
    window: int  # seconds


POLICY_HEADERS = {
    "RateLimit-Policy": 'The limit: "<name>";q=<requests>;w=<window seconds> (draft-ietf-httpapi-ratelimit-headers)',
    "RateLimit": 'What is left of it: "<name>";r=<remaining>;t=<seconds until a slot frees up>',
}

REGISTER = Limit("register", 5, 3600)
LOGIN = Limit("login", 5, 60)
ACTIVATE = Limit("activate", 3, 60)
ACTIVATION_CODE = Limit("activation-code", 3, 60)
PASSWORD_RESET = Limit("password-reset", 5, 3600)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    reset_after: int  # seconds until a slot frees up

    def headers(self, limit: Limit) -> dict[str, str]:
        out = {
            "RateLimit-Policy": f'"{limit.name}";q={limit.limit};w={limit.window}',
            "RateLimit": f'"{limit.name}";r={self.remaining};t={self.reset_after}',
        }
        if not self.allowed:
            out["Retry-After"] = str(self.reset_after)
        return out


class RateLimiter:
    def __init__(self, client: aioredis.Redis, prefix: str = "tasklane:rl", factor: int = 1) -> None:
        self.prefix = prefix
        self.factor = factor  # RELAXED_FACTOR under RATE_LIMITS=relaxed
        self.script = client.register_script(SLIDING_WINDOW)

    def effective(self, limit: Limit) -> Limit:
        return limit if self.factor == 1 else Limit(limit.name, limit.limit * self.factor, limit.window)

    async def hit(self, limit: Limit, key: str) -> Decision | None:
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]
        try:
            allowed, count, reset_ms = await self.script(
                keys=[f"{self.prefix}:{limit.name}:{digest}"],
                args=[limit.window * 1000, limit.limit, secrets.token_hex(6)],
            )
        except (redis.exceptions.RedisError, OSError) as exc:
            log.warning("rate limiter unavailable, allowing request", extra={"error": type(exc).__name__})
            return None
        return Decision(bool(allowed), max(limit.limit - int(count), 0), max(math.ceil(int(reset_ms) / 1000), 1))


async def enforce(request: Request, limit: Limit, key: str) -> None:
    """Count this request against `limit` for `key`; raises 429 once the window is full."""
    limiter: RateLimiter = request.state.limiter
    limit = limiter.effective(limit)
    decision = await limiter.hit(limit, key)
    if decision is None:
        return
    headers = decision.headers(limit)
    # The request-context middleware adds these to whatever response follows.
    request.state.rate_limit_headers = headers
    if not decision.allowed:
        raise TooManyRequests(
            f"Limit of {limit.limit} per {limit.window} s reached; retry in {decision.reset_after} s",
            headers=headers,
        )

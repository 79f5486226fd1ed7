"""create_app(): routes, middleware, exception handlers and the lifespan that owns every resource."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.middleware import Middleware

from service.accounts import routes as accounts_routes
from service.config import Settings, get_settings
from service.context import Context
from service.db import Database
from service.errors import EXCEPTION_HANDLERS
from service.http import health
from service.http.middleware import RequestContextMiddleware
from service.http.ratelimit import RateLimiter
from service.jobs import Dispatcher, make_broker
from service.logs import setup_logging
from service.migrate import verify
from service.tasks import routes as tasks_routes

log = logging.getLogger("tasklane.app")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    setup_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        db = Database(settings.database_url, min_size=settings.database_pool_min, max_size=settings.database_pool_max)
        await db.connect()
        async with db.connection() as conn:
            await verify(conn)
        redis = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2)
        dispatcher = Dispatcher(make_broker(settings))
        ctx = Context(settings=settings, db=db, dispatcher=dispatcher)
        log.info("web process ready", extra={"env": settings.app_env})
        try:
            yield {
                "settings": settings,
                "db": db,
                "redis": redis,
                "limiter": RateLimiter(redis),
                "ctx": ctx,
            }
        finally:
            await dispatcher.drain()
            dispatcher.close()
            await redis.aclose()
            await db.disconnect()

    return Starlette(
        routes=[*tasks_routes.routes, *health.routes, *accounts_routes.routes],  # hottest first: matched in order
        middleware=[Middleware(RequestContextMiddleware)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )

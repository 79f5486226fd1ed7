"""create_app(): routes, middleware, exception handlers and the lifespan that owns every resource."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
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
from service.errors import BACKEND_DOWN, EXCEPTION_HANDLERS
from service.http import docs, health, openapi
from service.http.middleware import RequestContextMiddleware
from service.http.ratelimit import RateLimiter
from service.http.routing import API_PREFIX, mount, shared_paths
from service.imports import routes as imports_routes
from service.logs import setup_logging
from service.messages import Dispatcher, make_broker
from service.metrics import routes as metrics_routes
from service.metrics.recorder import Recorder, final_flush, flush_forever
from service.migrate import verify
from service.notifications import routes as notifications_routes
from service.storage import open_store
from service.tasks import routes as tasks_routes

log = logging.getLogger("tasklane.app")
VERSION = "0.1.0"
FLUSHER_STOP_WAIT = 2.0  # seconds


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    setup_logging(settings.log_level)
    # This process's metric deltas; uvicorn calls the factory once per worker process.
    recorder = Recorder()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        os.makedirs(settings.upload_dir, exist_ok=True)
        db = Database(settings.database_url, min_size=settings.database_pool_min, max_size=settings.database_pool_max)
        await db.connect()
        try:
            async with db.connection() as conn:
                await verify(conn)
        except BACKEND_DOWN as exc:
            # Start anyway: /health/ready says 503 and requests answer 503 until PostgreSQL is back.
            log.warning("database unreachable at start-up", extra={"error": repr(exc)})
        redis = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2)
        dispatcher = Dispatcher(make_broker(settings))
        ctx = Context(settings=settings, db=db, dispatcher=dispatcher, store=open_store(settings))
        flusher = asyncio.create_task(flush_forever(recorder, redis, settings.metrics_flush_interval))
        if not settings.metrics_token and not settings.is_development:
            log.warning("METRICS_TOKEN is not set: /metrics and /api/v1/metrics are open to anyone")
        log.info("web process ready", extra={"env": settings.app_env})
        # Everything made so far (modules, routes, models, caches) lives as long as the process: out of
        # the collector's sight, a full collection no longer walks all of them, pausing requests, every so often.
        gc.freeze()
        try:
            yield {
                "settings": settings,
                "db": db,
                "redis": redis,
                "limiter": RateLimiter(redis, factor=settings.rate_limit_factor),
                "ctx": ctx,
                "metrics": recorder,
            }
        finally:
            await dispatcher.drain()
            dispatcher.close()
            flusher.cancel()
            # Bounded: a stop must end even if a Redis call in flight does not give way to the cancel (seen
            # once in ~20 stops under load: the web process then never exited).
            if not (await asyncio.wait([flusher], timeout=FLUSHER_STOP_WAIT))[0]:
                log.warning("metrics flusher still running at shutdown; going on without it")
            await final_flush(recorder, redis)
            await redis.aclose()
            await db.disconnect()

    middleware = [Middleware(RequestContextMiddleware, recorder=recorder if settings.metrics_enabled else None)]
    # Hottest first: routes are matched in order.
    routes = shared_paths(
        [
            *mount(
                API_PREFIX,
                [*tasks_routes.routes, *accounts_routes.routes, *imports_routes.routes, *metrics_routes.api_routes],
            ),
            *health.routes,
            *metrics_routes.routes,
            *docs.routes,
            *(notifications_routes.routes if settings.dev_inbox else []),
        ]
    )
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS, lifespan=lifespan)
    app.state.openapi = openapi.document(
        routes,
        title="tasklane",
        version=VERSION,
        # Without a METRICS_TOKEN the metrics endpoints are open, and the document says so.
        unenforced=frozenset() if settings.metrics_token else frozenset({"metrics"}),
        webhooks=imports_routes.WEBHOOKS,
    )
    return app

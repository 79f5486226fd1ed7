"""Takes this worker process's business counts (emails sent, ...) to Redis about once a second, on the
worker's event loop, and once more at shutdown, after the last message has finished."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future

import dramatiq
import redis.asyncio as aioredis
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from service.metrics.recorder import Recorder, final_flush, flush_forever
from workers.middleware.event_loop import run
from workers.middleware.resources import resources


class MetricsFlusher(Middleware):
    def __init__(self) -> None:
        self._future: Future[None] | None = None
        self._recorder: Recorder | None = None
        self._redis: aioredis.Redis | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None
        settings = resources.ctx.settings
        self._recorder = Recorder(role="worker")
        self._redis = aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2)
        self._future = asyncio.run_coroutine_threadsafe(
            flush_forever(self._recorder, self._redis, settings.metrics_flush_interval), loop_thread.loop
        )

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Runs before AsyncIO's own after_worker_shutdown (reverse order): the loop is still up.
        if self._future is not None:
            self._future.cancel()
        if self._recorder is not None and self._redis is not None:
            run(final_flush(self._recorder, self._redis))
            run(self._redis.aclose())
        self._future = self._recorder = self._redis = None

"""The worker's broker and middleware: one class per concern, hooks named before_*/after_*.

Order matters: AsyncIO must come first so the event loop exists before the hooks that use it.
Middleware added since lives in workers/middleware/, one concern per module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import dramatiq
import httpx
import redis.asyncio as aioredis
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from service import idempotency
from service.config import get_settings
from service.context import Context
from service.db import Database
from service.imports import pipeline
from service.imports import service as imports
from service.logs import request_id_var, setup_logging
from service.messages import Dispatcher, make_broker, send
from service.metrics.recorder import Recorder, final_flush, flush_forever
from service.notifications import emails, webhooks
from service.notifications.emails import Mailer, mailer_for
from service.storage import clear_scratch, open_store, scratch_dir
from workers.middleware.clean_stop import CleanStop
from workers.middleware.event_loop import DaemonAsyncIO
from workers.middleware.lanes import Lanes

log = logging.getLogger("tasklane.worker")
T = TypeVar("T")


class Resources:
    """What actors share inside one worker process; opened at boot on the worker's event loop."""

    ctx: Context
    mailer: Mailer
    webhook_client: httpx.AsyncClient  # one pool of outbound connections for every webhook delivery


resources = Resources()


def run(coro: Awaitable[T]) -> T:
    """Run a coroutine on the worker's event loop from any thread and wait for it."""
    loop_thread = get_event_loop_thread()
    assert loop_thread is not None, "the AsyncIO middleware is not running"
    return loop_thread.run_coroutine(coro)


class RequestContext(Middleware):
    """Carries the X-Request-ID of the request that caused a message into the worker's log lines.
    Async actors see it too: their coroutine is scheduled from this thread and copies its context."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message[Any]) -> None:
        request_id_var.set(message.options.get("request_id"))

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.Message[Any],
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        request_id_var.set(None)

    after_skip_message = after_process_message


class WorkerResources(Middleware):
    """Opens the database pool and the webhooks' HTTP client when the worker boots, closes them when it stops."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        pipeline.stopping.clear()
        settings = get_settings()
        os.makedirs(settings.upload_dir, exist_ok=True)
        clear_scratch(scratch_dir(settings))  # copies of uploads left by a worker killed mid-import
        db = Database(settings.database_url, min_size=settings.database_pool_min, max_size=settings.database_pool_max)
        run(db.connect())
        resources.ctx = Context(settings=settings, db=db, dispatcher=Dispatcher(broker), store=open_store(settings))
        resources.mailer = mailer_for(settings)
        resources.webhook_client = webhooks.make_http_client(settings)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # An import in progress hands itself back at its next chunk instead of holding up the stop.
        pipeline.stopping.set()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # After hooks run in reverse order, so the AsyncIO loop is still up here, and every worker
        # thread has finished its message: nothing uses the pool any more.
        ctx = getattr(resources, "ctx", None)
        client = getattr(resources, "webhook_client", None)
        if client is not None:
            run(client.aclose())
        if ctx is not None:
            ctx.dispatcher.close()
            run(ctx.db.disconnect())
        pipeline.stopping.clear()  # its work is done; a worker booted later in this process starts afresh


# Each re-drive function returns jobs for work whose broker message may have been lost.
async def _housekeeping(ctx: Context) -> list[Any]:
    """Deletes what has outlived its use (uploads past their retention, Idempotency-Keys past 24 h)."""
    await imports.purge_uploads(ctx)
    await idempotency.purge_expired(ctx)
    return []


REDRIVERS: list[Callable[[Context], Awaitable[list[Any]]]] = [
    emails.redrive,
    webhooks.redrive,
    pipeline.redrive,
    _housekeeping,
]
RELAY_LOCK = int.from_bytes(b"tl-relay", "big") >> 1
RELAY_STOP_WAIT = 15.0  # seconds a stopping worker lets a sweep in progress finish


class Relay(Middleware):
    """Re-enqueues work still pending in PostgreSQL after its deadline: a Redis restart without
    persistence, a broker outage during a request, or a killed worker never loses a job. Runs on the
    worker's event loop; an advisory lock lets one worker process at a time do a sweep."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._wake = asyncio.Event()
        self._future: Future[None] | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop_thread = get_event_loop_thread()
        assert loop_thread is not None
        self._stop, self._wake = threading.Event(), asyncio.Event()
        self._future = asyncio.run_coroutine_threadsafe(self._loop(broker), loop_thread.loop)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # The loop is asked to stop, not cancelled: a cancel landing in a sweep's COMMIT would leave its
        # connection checked out for good (`databases` releases it only after a completed COMMIT or
        # ROLLBACK), and closing the pool would then wait forever.
        self._stop.set()
        loop_thread = get_event_loop_thread()
        if self._future is None or loop_thread is None:
            return
        loop_thread.loop.call_soon_threadsafe(self._wake.set)
        try:
            self._future.result(timeout=RELAY_STOP_WAIT)
        except TimeoutError:
            log.warning("relay sweep still running at shutdown, cancelled")
            self._future.cancel()
        except Exception as exc:
            log.warning("relay stopped with an error", extra={"error": repr(exc)})

    async def _loop(self, broker: dramatiq.Broker) -> None:
        interval = resources.ctx.settings.relay_interval
        while not self._stop.is_set():
            try:
                await sweep(resources.ctx, broker)
            except Exception as exc:
                if _executor_gone(exc):
                    # The interpreter is shutting down under this loop: nothing here can run work any more.
                    # Stop the process cleanly (its jobs handed back) rather than linger as a broken relay.
                    log.error("worker executor shut down; stopping this process", extra={"error": repr(exc)})
                    os.kill(os.getpid(), signal.SIGTERM)
                    return
                log.warning("relay sweep failed", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)


def _executor_gone(exc: Exception) -> bool:
    # What concurrent.futures and asyncio raise once their executor has been shut down.
    text = str(exc) if isinstance(exc, RuntimeError) else ""
    return "cannot schedule new futures" in text or "Executor shutdown has been called" in text


async def sweep(ctx: Context, broker: dramatiq.Broker) -> int:
    """One pass of the relay; returns how many jobs it enqueued."""
    jobs = []
    async with ctx.db.transaction(), ctx.db.connection() as conn:
        if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK):
            return 0
        for redrive in REDRIVERS:
            jobs.extend(await redrive(ctx))
    # Enqueue after commit, off the loop: if Redis is still away, the rows stay due and the next
    # sweep tries again.
    loop = asyncio.get_running_loop()
    for job in jobs:
        await loop.run_in_executor(None, send, broker, job)
    if jobs:
        log.info("relay re-enqueued jobs", extra={"count": len(jobs)})
    return len(jobs)


class MetricsFlusher(Middleware):
    """Takes this worker process's business counts (emails sent, ...) to Redis about once a second, on
    the worker's event loop, and once more at shutdown, after the last message has finished."""

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


def setup() -> dramatiq.Broker:
    settings = get_settings()
    setup_logging(settings.log_level)
    broker = make_broker(settings)
    broker.add_middleware(DaemonAsyncIO())
    broker.add_middleware(CleanStop())
    broker.add_middleware(Lanes())
    broker.add_middleware(RequestContext())
    broker.add_middleware(WorkerResources())
    broker.add_middleware(Relay())
    broker.add_middleware(MetricsFlusher())
    dramatiq.set_broker(broker)
    return broker


broker = setup()

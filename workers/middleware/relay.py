"""Runs the relay's sweep (service/relay.py) every RELAY_INTERVAL seconds on the worker's event loop, so a
lost message never loses work; it lets a sweep in progress finish when the worker stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from concurrent.futures import Future

import dramatiq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.middleware import Middleware

from service.relay import sweep
from workers.middleware.resources import resources

log = logging.getLogger("tasklane.worker")
STOP_WAIT = 15.0  # seconds a stopping worker lets a sweep in progress finish


class Relay(Middleware):
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
            self._future.result(timeout=STOP_WAIT)
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

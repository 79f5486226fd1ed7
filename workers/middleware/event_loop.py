"""The AsyncIO middleware with its event loop in a daemon thread.

Dramatiq's loop thread is not a daemon: a worker process whose main thread has ended (an exit from the
middle of a stop, say) would stay alive on it, heartbeating a job it can no longer work on and running
a relay whose executor the interpreter has shut down ("cannot schedule new futures after shutdown").
As a daemon, the loop ends with the process; a normal stop still stops it in order (after_worker_shutdown).
It comes first in the broker's middleware, so the loop exists before the hooks that use it (`run`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import dramatiq
from dramatiq.asyncio import EventLoopThread, get_event_loop_thread, set_event_loop_thread
from dramatiq.middleware import AsyncIO

T = TypeVar("T")


class DaemonAsyncIO(AsyncIO):
    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = EventLoopThread(self.logger)
        thread.daemon = True
        thread.start(timeout=1.0)
        set_event_loop_thread(thread)


def run(coro: Awaitable[T]) -> T:
    """Runs a coroutine on the worker's event loop from any thread, and waits for it."""
    loop_thread = get_event_loop_thread()
    assert loop_thread is not None, "the AsyncIO middleware is not running"
    return loop_thread.run_coroutine(coro)

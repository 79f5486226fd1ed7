"""Where a job's file is read: daemon threads of their own, watched from the event loop.

Not the loop's executor, whose threads the interpreter waits for at exit: a worker that handed its job
back exits without waiting for the reader to finish a chunk or a workbook it no longer needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def in_daemon_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """`fn(*args)` in a daemon thread of its own, as a future of this loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def resolve(result: Any, error: BaseException | None) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def run() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits for this any more
            loop.call_soon_threadsafe(resolve, result, error)

    threading.Thread(target=run, name="import-reader", daemon=True).start()
    return future


async def ready_unless(future: asyncio.Future[Any], stop: threading.Event, poll: float) -> bool:
    """Waits for `future`; False as soon as `stop` is set while it still runs (looked at every `poll` s)."""
    while not future.done():
        if stop.is_set():
            return False
        await asyncio.wait([future], timeout=poll)
    return True


def close_once_open(opening: asyncio.Future[Any]) -> None:
    """Done-callback of a reader being opened that nobody will use: closes it, if it opened."""
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()

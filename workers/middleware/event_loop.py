"""The AsyncIO middleware with its event loop in a daemon thread.

Dramatiq's loop thread is not a daemon: a worker process whose main thread has ended (an exit from the
middle of a stop, say) would stay alive on it, heartbeating a job it can no longer work on and running
a relay whose executor the interpreter has shut down ("cannot schedule new futures after shutdown").
As a daemon, the loop ends with the process; a normal stop still stops it in order (after_worker_shutdown).
"""

from __future__ import annotations

import dramatiq
from dramatiq.asyncio import EventLoopThread, set_event_loop_thread
from dramatiq.middleware import AsyncIO


class DaemonAsyncIO(AsyncIO):
    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = EventLoopThread(self.logger)
        thread.daemon = True
        thread.start(timeout=1.0)
        set_event_loop_thread(thread)

"""A clean stop when every process of the worker's container is signalled at once.

A platform (and honcho, and `make run`) stops a container with SIGTERM to each of its processes: a
Dramatiq worker process gets the signal directly and again when the master forwards it, and maybe both
once more. Dramatiq's CLI reads any second signal as "kill now" and exits from the middle of the stop:
the chunk in progress is lost, and the event loop thread (not a daemon) keeps the process alive for good,
heartbeating a job it can no longer work on. Here the first signal starts the graceful stop and later
ones are ignored; the stop is bounded anyway (the import hands its job back at once, and the Procfile's
--worker-shutdown-timeout caps the rest), well within the ~30 s before a platform's SIGKILL.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

from service.imports import pipeline

log = logging.getLogger("tasklane.worker")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
Handler = Callable[[int, FrameType | None], Any]


class CleanStop(Middleware):
    def __init__(self) -> None:
        self.stopping = False
        self.worker: dramatiq.Worker | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.worker = worker

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        # Only `dramatiq` worker processes emit process_boot, after the CLI installed its handlers.
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in STOP_SIGNALS:
            original = signal.getsignal(sig)
            if callable(original):
                signal.signal(sig, self._once(original))

    def _once(self, original: Handler) -> Handler:
        def handle(signum: int, frame: FrameType | None) -> None:
            if self.stopping:
                log.info("already stopping; signal ignored", extra={"signal": signal.Signals(signum).name})
                return
            self.stopping = True
            # Now, not when the CLI's main loop next looks (up to 1 s later): imports hand their jobs back,
            # and the worker threads take no new message (one would only be handed back, to this process
            # again). Messages already fetched are requeued by the stop.
            pipeline.stopping.set()
            for thread in self.worker.workers if self.worker else ():
                thread.stop()
            original(signum, frame)

        return handle

"""How a worker process shares its threads between imports and notifications.

Dramatiq runs every message on one of the process's threads and prefetches the same number of messages
(2 x threads) from every queue. An import holds its thread for minutes: with that prefetch one process
parks imports it cannot start while another idles, and emails wait behind imports. So, per process:

- imports: at most `--threads` at once, and a prefetch of exactly that: N processes x M threads run
  N x M imports, and an import waits in a process only for a thread that is about to free up;
- emails and webhooks: WORKER_NOTIFICATION_THREADS more threads, and that prefetch on each of their
  queues: imports never take more than `--threads` threads, so a notification never waits for one.
"""

from __future__ import annotations

import dramatiq
from dramatiq.middleware import Middleware

from service.config import get_settings
from service.messages import queue_of


class Lanes(Middleware):
    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        settings = get_settings()
        imports, notifications = worker.worker_threads, settings.worker_notification_threads
        broker.prefetch = {  # type: ignore[attr-defined]  (service.messages.PrefetchPerQueue)
            queue_of("imports.process", settings): imports,
            queue_of("emails.send", settings): notifications,
            queue_of("webhooks.deliver", settings): notifications,
        }
        # Read by Worker.start() right after this hook, when it starts its threads.
        worker.worker_threads = imports + notifications

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        broker.prefetch = {}  # type: ignore[attr-defined]  (a consumer made outside a worker takes its own)

"""Hand work to the workers.

Messages are addressed by actor name, so the service layer never imports `workers/`. A request never
waits on the broker: `Dispatcher.dispatch_soon` enqueues from a thread after the transaction has
committed; if Redis is away the message is simply not sent and the relay re-drives it from the database
row that records the work.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker

from service.config import Settings
from service.logs import request_id_var

log = logging.getLogger("tasklane.jobs")

# actor name -> queue name; the workers declare their actors with these same names.
QUEUES: dict[str, str] = {
    "emails.send": "emails",
    "imports.process": "imports",
    "webhooks.deliver": "webhooks",
}


@dataclass(frozen=True)
class Job:
    actor: str
    args: tuple[Any, ...] = ()
    delay_ms: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def message(self) -> dramatiq.Message[Any]:
        options = dict(self.options)
        request_id = request_id_var.get()
        if request_id and "request_id" not in options:
            options["request_id"] = request_id
        return dramatiq.Message(
            queue_name=QUEUES[self.actor],
            actor_name=self.actor,
            args=self.args,
            kwargs={},
            options=options,
        )


def make_broker(settings: Settings) -> RedisBroker:
    client = redis.Redis.from_url(
        settings.redis_url,
        # Short timeouts: a broker that does not answer is treated as down, and the relay catches up.
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
    )
    return RedisBroker(client=client, heartbeat_timeout=settings.broker_heartbeat_timeout_ms)


def send(broker: dramatiq.Broker, job: Job) -> None:
    broker.enqueue(job.message(), delay=job.delay_ms)


class Dispatcher:
    """Enqueues jobs off the event loop; failures are logged, never raised to the request."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dispatch")
        self._pending: set[Future[None]] = set()

    def _send_all(self, jobs: tuple[Job, ...]) -> None:
        for job in jobs:
            try:
                send(self.broker, job)
            except Exception as exc:
                log.warning("enqueue failed, the relay will retry", extra={"actor": job.actor, "error": repr(exc)})

    def dispatch_soon(self, *jobs: Job) -> None:
        if not jobs:
            return
        # Run in a copy of this context, so the messages carry the request's id.
        future = self._executor.submit(contextvars.copy_context().run, self._send_all, jobs)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    async def send_now(self, job: Job) -> bool:
        """Enqueue and wait for the broker's answer (off the loop); False when it failed."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, send, self.broker, job)
        except Exception as exc:
            log.warning("enqueue failed, the relay will retry", extra={"actor": job.actor, "error": repr(exc)})
            return False
        return True

    async def drain(self, wait: float = 5.0) -> None:
        """Wait (bounded) for enqueues still in flight, at shutdown."""
        pending = [asyncio.wrap_future(f) for f in list(self._pending)]
        if pending:
            await asyncio.wait(pending, timeout=wait)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=False)

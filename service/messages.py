"""Hand work to the workers: broker messages, and the broker they travel on.

("Job" in this project means an import job; what goes through the broker is a message.) Messages are
addressed by actor name, so the service layer never imports `workers/`. A request never
waits on the broker: `Dispatcher.dispatch_soon` enqueues from a thread after the transaction has
committed; if the broker is away the message is simply not sent and the relay re-drives it from the
database row that records the work.

The broker is Redis (REDIS_URL) unless BROKER_URL names another: `amqp://` runs Dramatiq on RabbitMQ,
with durable queues and publisher confirms. Queue names carry BROKER_QUEUE_PREFIX, so deployments (or
test runs) can share one broker.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dramatiq
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from service.config import Settings, get_settings
from service.logs import request_id_var

log = logging.getLogger("tasklane.messages")

# actor name -> queue name (before BROKER_QUEUE_PREFIX); the workers declare their actors with these.
QUEUES: dict[str, str] = {
    "emails.send": "emails",
    "imports.process": "imports",
    "webhooks.deliver": "webhooks",
}
RABBITMQ_SCHEMES = ("amqp", "amqps")


def queue_of(actor: str, settings: Settings | None = None) -> str:
    """The broker queue of an actor's messages, prefix included."""
    return (settings or get_settings()).broker_queue_prefix + QUEUES[actor]


@dataclass(frozen=True)
class Message:
    """A message for the actor named `actor`, built into Dramatiq's own when it is sent."""

    actor: str
    args: tuple[Any, ...] = ()
    delay_ms: int | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_dramatiq(self) -> dramatiq.Message[Any]:
        options = dict(self.options)
        request_id = request_id_var.get()
        if request_id and "request_id" not in options:
            options["request_id"] = request_id
        return dramatiq.Message(
            queue_name=queue_of(self.actor),
            actor_name=self.actor,
            args=self.args,
            kwargs={},
            options=options,
        )


class PrefetchPerQueue(dramatiq.Broker):
    """`consume` takes each queue's own prefetch from `prefetch` (set by the worker at boot), where Dramatiq
    gives every queue of a process the same one: an import holds a thread for minutes, an email for a
    moment, and a message prefetched behind a long import waits while other processes idle."""

    prefetch: dict[str, int]

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> dramatiq.Consumer:
        chosen = getattr(self, "prefetch", {}).get(queue_name, prefetch)
        return super().consume(queue_name, prefetch=chosen, timeout=timeout)  # type: ignore[call-arg]


class Redis(PrefetchPerQueue, RedisBroker):
    """Dramatiq's Redis broker, with a prefetch per queue."""


class RabbitMQ(PrefetchPerQueue, RabbitmqBroker):
    """Dramatiq's RabbitMQ broker, with a prefetch per queue."""


def is_rabbitmq(settings: Settings) -> bool:
    return urlsplit(settings.broker_url).scheme.lower() in RABBITMQ_SCHEMES


def make_broker(settings: Settings) -> dramatiq.Broker:
    if is_rabbitmq(settings):
        broker = RabbitMQ(url=settings.broker_url, confirm_delivery=True)
        # A RabbitMQ short of memory or disk blocks publishers: give up after 30 s (the relay catches up)
        # rather than hold a thread forever, unless the URL says otherwise. (Several URLs: a cluster.)
        urls = settings.broker_url.split(";")
        parameters = broker.parameters if isinstance(broker.parameters, list) else [broker.parameters]
        for url, each in zip(urls, parameters, strict=True):
            if "blocked_connection_timeout" not in parse_qs(urlsplit(url).query):
                each.blocked_connection_timeout = 30
        return broker
    client = redis.Redis.from_url(
        settings.broker_url or settings.redis_url,
        # Short timeouts: a broker that does not answer is treated as down, and the relay catches up.
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
    )
    return Redis(client=client, heartbeat_timeout=settings.broker_heartbeat_timeout_ms)


def send(broker: dramatiq.Broker, message: Message) -> None:
    broker.enqueue(message.to_dramatiq(), delay=message.delay_ms)


class Dispatcher:
    """Enqueues messages off the event loop; failures are logged, never raised to the request."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dispatch")
        self._pending: set[Future[None]] = set()

    def _send_all(self, messages: tuple[Message, ...]) -> None:
        for message in messages:
            try:
                send(self.broker, message)
            except Exception as exc:
                log.warning("enqueue failed, the relay will retry", extra={"actor": message.actor, "error": repr(exc)})

    def dispatch_soon(self, *messages: Message) -> None:
        if not messages:
            return
        # Run in a copy of this context, so the messages carry the request's id.
        future = self._executor.submit(contextvars.copy_context().run, self._send_all, messages)
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)

    async def send_now(self, message: Message) -> bool:
        """Enqueue and wait for the broker's answer (off the loop); False when it failed."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, send, self.broker, message)
        except Exception as exc:
            log.warning("enqueue failed, the relay will retry", extra={"actor": message.actor, "error": repr(exc)})
            return False
        return True

    async def drain(self, wait: float = 5.0) -> None:
        """Wait (bounded) for enqueues still in flight, at shutdown."""
        pending = [asyncio.wrap_future(f) for f in list(self._pending)]
        if pending:
            await asyncio.wait(pending, timeout=wait)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=False)

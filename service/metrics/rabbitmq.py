"""Queue figures when Dramatiq runs on RabbitMQ (BROKER_URL=amqp://...).

A passive queue declare answers with the queue's ready message count without creating anything. Dramatiq
keeps three queues per queue name: the queue itself, `<name>.DQ` (delayed: retries in backoff; a worker
holds those whose time has not come, unacknowledged, so they do not count here) and `<name>.XQ` (dead
letters). What AMQP does not tell: messages delivered but not yet acknowledged, and the age of the
oldest waiting message; those figures are left out (null).
"""

from __future__ import annotations

import asyncio
from contextlib import closing

import pika
import pika.exceptions

TIMEOUT = 2.0  # seconds: a metrics request must not hang on a broker that does not answer


def _counts(url: str, names: list[str]) -> dict[str, int]:
    parameters = pika.URLParameters(url)
    parameters.socket_timeout = parameters.blocked_connection_timeout = TIMEOUT
    parameters.connection_attempts = 1
    counts = {}
    with closing(pika.BlockingConnection(parameters)) as connection:
        channel = connection.channel()
        for name in names:
            try:
                counts[name] = channel.queue_declare(name, passive=True).method.message_count
            except pika.exceptions.ChannelClosedByBroker:  # 404: no worker has declared it yet
                counts[name] = 0
                channel = connection.channel()
    return counts


async def queue_counts(url: str, queues: dict[str, str]) -> dict[str, tuple[int, int, int]]:
    """{shown name: (ready, delayed, dead-lettered)} for {shown name: broker queue name}; raises
    pika.exceptions.AMQPError or OSError when RabbitMQ does not answer."""
    names = [f"{queue}{suffix}" for queue in queues.values() for suffix in ("", ".DQ", ".XQ")]
    counts = await asyncio.wait_for(asyncio.to_thread(_counts, url, names), TIMEOUT * 3)
    return {shown: (counts[q], counts[f"{q}.DQ"], counts[f"{q}.XQ"]) for shown, q in queues.items()}

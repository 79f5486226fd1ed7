"""Reading the figures back: what every process flushed to Redis, plus the workers' state.

Worker figures are read when asked, from Dramatiq's own Redis structures (see dramatiq's
brokers/redis/dispatch.lua) and from PostgreSQL:

    dramatiq:<queue>           list of message ids waiting for a worker (LPOP takes the head: the oldest)
    dramatiq:<queue>.msgs      hash id -> encoded message, for waiting ones and those fetched but not acked
    dramatiq:<queue>.DQ.msgs   hash of delayed messages (retries in backoff, scheduled sends)
    dramatiq:<queue>.XQ        sorted set of dead-lettered message ids (kept 7 days by Dramatiq)

The oldest message's age is now minus its `message_timestamp` (when it was first enqueued: a message
that waited out retries counts from its first enqueue). On RabbitMQ the figures come from
`service.metrics.rabbitmq` (no in-flight count or age there: null). `jobs_processing` counts import jobs in
status 'processing'; it is 0 while the import_jobs table does not exist.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import dramatiq
import redis.asyncio as aioredis

from service import metrics
from service.db import Database, Queries
from service.messages import QUEUES
from service.metrics import histogram, rabbitmq
from service.metrics.recorder import (
    PREFIX,
    WINDOW_MINUTES,
    counters_key,
    current_minute,
    duration_key,
    http_key,
    latency_key,
)

log = logging.getLogger("tasklane.metrics")
Q = Queries("metrics")
NAMESPACE = "dramatiq"
QUEUE_NAMES = tuple(sorted(set(QUEUES.values())))
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
QUANTILES = (0.5, 0.95, 0.99)
DB_TIMEOUT = 2.0


@dataclass(frozen=True)
class RouteFigures:
    method: str
    route: str
    count: int  # since the counters began (Redis keeps them until it is flushed)
    by_status_class: dict[str, int]
    duration_seconds_total: float
    window_count: int  # requests in the quantile window
    quantiles_ms: dict[float, float | None]

    def public(self) -> dict[str, Any]:
        q = self.quantiles_ms
        return {
            "route": self.route,
            "method": self.method,
            "count": self.count,
            "by_status_class": self.by_status_class,
            "window": {
                "count": self.window_count,
                "p50_ms": _round(q[0.5]),
                "p95_ms": _round(q[0.95]),
                "p99_ms": _round(q[0.99]),
            },
        }


@dataclass(frozen=True)
class QueueFigures:
    queue: str
    ready: int
    delayed: int
    in_flight: int | None  # None: the broker does not tell (RabbitMQ)
    dead_letter: int
    oldest_age_seconds: float | None
    age_known: bool = True

    def public(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "delayed": self.delayed,
            "in_flight": self.in_flight,
            "dead_letter": self.dead_letter,
            "oldest_age_seconds": _round(self.oldest_age_seconds),
        }


@dataclass(frozen=True)
class Snapshot:
    generated_at: float
    routes: list[RouteFigures]
    counters: dict[str, int]
    queues: list[QueueFigures]
    jobs_processing: int | None  # None when PostgreSQL did not answer
    unavailable: list[str]

    def public(self) -> dict[str, Any]:
        return {
            "generated_at": round(self.generated_at, 3),
            # Nominal: the window is whole minutes (the current one and the 5 before it), so 300-360 s.
            "window_seconds": WINDOW_MINUTES * 60,
            "routes": {f"{r.method} {r.route}": r.public() for r in self.routes},
            "counters": self.counters,
            "workers": {
                "queues": {q.queue: q.public() for q in self.queues},
                "jobs_processing": self.jobs_processing,
            },
            "unavailable": self.unavailable,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read_snapshot(
    client: aioredis.Redis,
    db: Database | None,
    *,
    prefix: str = PREFIX,
    namespace: str = NAMESPACE,
    queues: tuple[str, ...] = QUEUE_NAMES,
    queue_prefix: str = "",
    rabbitmq_url: str | None = None,
) -> Snapshot:
    """Everything /api/v1/metrics shows. Redis errors propagate (the endpoint answers 503); a PostgreSQL
    failure only blanks `jobs_processing`, a RabbitMQ one (rabbitmq_url) the queue figures."""
    now = time.time()
    minutes = range(current_minute(now) - WINDOW_MINUTES, current_minute(now) + 1)
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(http_key(prefix))
    pipe.hgetall(duration_key(prefix))
    pipe.hgetall(counters_key(prefix))
    for minute in minutes:
        pipe.hgetall(latency_key(minute, prefix))
    for queue in queues if rabbitmq_url is None else ():
        base = f"{namespace}:{queue_prefix}{queue}"
        pipe.llen(base)
        pipe.hlen(f"{base}.msgs")
        pipe.hlen(f"{base}.DQ.msgs")
        pipe.zcard(f"{base}.XQ")
        pipe.lindex(base, 0)
    results = await pipe.execute()
    http, durations, counters = results[0], results[1], results[2]
    windows = results[3 : 3 + len(minutes)]
    queue_results = results[3 + len(minutes) :]

    jobs_processing, unavailable = await _jobs_processing(db)
    if rabbitmq_url is None:
        queue_figures = await _queues(client, namespace, queue_prefix, queues, queue_results, now)
    else:
        queue_figures = await _rabbitmq_queues(rabbitmq_url, queue_prefix, queues, unavailable)
    return Snapshot(
        generated_at=now,
        routes=_routes(http, durations, windows),
        counters={name: int(counters.get(name.encode(), 0)) for name in metrics.COUNTERS},
        queues=queue_figures,
        jobs_processing=jobs_processing,
        unavailable=unavailable,
    )


def _routes(
    http: dict[bytes, bytes], durations: dict[bytes, bytes], windows: list[dict[bytes, bytes]]
) -> list[RouteFigures]:
    by_class: dict[tuple[str, str], dict[str, int]] = {}
    for raw, value in http.items():
        method, rest = _text(raw).split(" ", 1)
        route, cls = rest.rsplit(" ", 1)
        classes = by_class.setdefault((method, route), dict.fromkeys(STATUS_CLASSES, 0))
        classes[cls] = classes.get(cls, 0) + int(value)
    buckets: dict[tuple[str, str], dict[int, int]] = {}
    for window in windows:
        for raw, value in window.items():
            method, rest = _text(raw).split(" ", 1)
            route, bucket = rest.rsplit(" ", 1)
            counts = buckets.setdefault((method, route), {})
            counts[int(bucket)] = counts.get(int(bucket), 0) + int(value)
    out = []
    for method, route in sorted(by_class.keys() | buckets.keys(), key=lambda k: (k[1], k[0])):
        classes = by_class.get((method, route), dict.fromkeys(STATUS_CLASSES, 0))
        counts = buckets.get((method, route), {})
        out.append(
            RouteFigures(
                method=method,
                route=route,
                count=sum(classes.values()),
                by_status_class=classes,
                duration_seconds_total=int(durations.get(f"{method} {route}".encode(), 0)) / 1e6,
                window_count=sum(counts.values()),
                quantiles_ms=histogram.quantiles(counts, QUANTILES),
            )
        )
    return out


async def _rabbitmq_queues(
    url: str, queue_prefix: str, queues: tuple[str, ...], unavailable: list[str]
) -> list[QueueFigures]:
    try:
        counts = await rabbitmq.queue_counts(url, {queue: queue_prefix + queue for queue in queues})
    except Exception as exc:
        log.warning("metrics: RabbitMQ unavailable for queue figures", extra={"error": repr(exc)})
        unavailable.append("rabbitmq")
        return []
    return [
        QueueFigures(queue, ready, delayed, None, dead, None, age_known=False)
        for queue, (ready, delayed, dead) in counts.items()
    ]


async def _queues(
    client: aioredis.Redis, namespace: str, queue_prefix: str, queues: tuple[str, ...], results: list[Any], now: float
) -> list[QueueFigures]:
    heads = {}
    for i, queue in enumerate(queues):
        head = results[i * 5 + 4]
        if head is not None:
            heads[queue] = head
    encoded: dict[str, bytes | None] = {}
    if heads:
        pipe = client.pipeline(transaction=False)
        for queue, message_id in heads.items():
            pipe.hget(f"{namespace}:{queue_prefix}{queue}.msgs", message_id)
        encoded = dict(zip(heads, await pipe.execute(), strict=True))
    out = []
    for i, queue in enumerate(queues):
        ready, stored, delayed, dead, _ = results[i * 5 : i * 5 + 5]
        out.append(
            QueueFigures(
                queue=queue,
                ready=int(ready),
                delayed=int(delayed),
                in_flight=max(int(stored) - int(ready), 0),
                dead_letter=int(dead),
                oldest_age_seconds=_age(encoded.get(queue), now),
            )
        )
    return out


def _age(data: bytes | None, now: float) -> float | None:
    if data is None:
        return None
    try:
        message = dramatiq.Message.decode(data)
        return max(now - message.message_timestamp / 1000, 0.0)
    except Exception:
        return None


async def _jobs_processing(db: Database | None) -> tuple[int | None, list[str]]:
    if db is None:
        return None, ["postgres"]

    async def count() -> int:
        if not await db.fetch_val(Q.import_jobs_exist):
            return 0
        return int(await db.fetch_val(Q.count_processing_imports))

    try:
        return await asyncio.wait_for(count(), DB_TIMEOUT), []
    except Exception as exc:
        log.warning("metrics: PostgreSQL unavailable for jobs_processing", extra={"error": repr(exc)})
        return None, ["postgres"]

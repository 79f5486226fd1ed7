"""The snapshot in Prometheus text exposition format 0.0.4, for any Prometheus to scrape.

Latency is a summary (quantile labels) rather than a histogram (`le` buckets): every web process
already aggregates into Redis, so this one endpoint speaks for the whole fleet and the classic
drawback of summaries (quantiles of separate instances cannot be combined) does not arise; it gives
Prometheus the same p50/p95/p99 as the JSON, over the same sliding window (the last 5 to 6 minutes),
with no 140-bucket series per route. `_sum` and `_count` are cumulative counters as usual, so
rate(_sum)/rate(_count) gives the mean latency over any range.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

from service import metrics
from service.metrics.snapshot import QUANTILES, Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape_label(value)}"' for name, value in labels.items()) + "}"


def _family(name: str, kind: str, help_text: str) -> Iterator[str]:
    yield f"# HELP {name} {_escape_help(help_text)}"
    yield f"# TYPE {name} {kind}"


def render(snapshot: Snapshot) -> str:
    return "\n".join(_lines(snapshot)) + "\n"


def _lines(s: Snapshot) -> Iterator[str]:
    name = "tasklane_http_requests_total"
    yield from _family(name, "counter", "HTTP requests by route template, method and status class.")
    for r in s.routes:
        for cls, n in r.by_status_class.items():
            yield f"{name}{_labels(route=r.route, method=r.method, status_class=cls)} {n}"

    name = "tasklane_http_request_duration_seconds"
    yield from _family(name, "summary", "HTTP request latency; quantiles over the last 5 to 6 minutes.")
    for r in s.routes:
        for q in QUANTILES:
            ms = r.quantiles_ms[q]
            value = None if ms is None else ms / 1000
            yield f"{name}{_labels(route=r.route, method=r.method, quantile=repr(q))} {_number(value)}"
        yield f"{name}_sum{_labels(route=r.route, method=r.method)} {_number(r.duration_seconds_total)}"
        yield f"{name}_count{_labels(route=r.route, method=r.method)} {r.count}"

    for counter, help_text in metrics.COUNTERS.items():
        name = f"tasklane_{counter}_total"
        yield from _family(name, "counter", help_text)
        yield f"{name} {s.counters.get(counter, 0)}"

    gauges = [
        ("tasklane_queue_depth", "Messages waiting in the queue for a worker.", lambda q: q.ready),
        ("tasklane_queue_delayed", "Delayed messages (retries in backoff, scheduled).", lambda q: q.delayed),
        ("tasklane_queue_in_flight", "Messages fetched by a worker and not yet acknowledged.", lambda q: q.in_flight),
        ("tasklane_queue_dead_letter", "Messages in the dead-letter queue.", lambda q: q.dead_letter),
        (
            "tasklane_queue_oldest_message_age_seconds",
            "Age of the oldest waiting message (0 when the queue is empty).",
            lambda q: (q.oldest_age_seconds or 0.0) if q.age_known else None,
        ),
    ]
    for name, help_text, value in gauges:
        yield from _family(name, "gauge", help_text)
        for q in s.queues:
            if value(q) is not None:  # figures the broker does not give (RabbitMQ) have no sample
                yield f"{name}{_labels(queue=q.queue)} {_number(value(q))}"

    if s.jobs_processing is not None:
        name = "tasklane_jobs_processing"
        yield from _family(name, "gauge", "Import jobs being processed by a worker.")
        yield f"{name} {s.jobs_processing}"

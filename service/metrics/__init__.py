"""Metrics shared by every web and worker process through Redis.

Business counters: call `metrics.count(name, n=1)` from service code in any process (web or worker,
any thread). It only adds to a process-local tally; a background flusher (the web lifespan, or the
worker's event loop) applies the tallies to Redis about once a second, so it never waits on I/O and
never raises. The names, all reported (as 0 until first counted) by `GET /api/v1/metrics` and as
`tasklane_<name>_total` by `GET /metrics`:

    registrations                 accounts created (POST /api/v1/users, 201)
    activations                   accounts activated with their emailed code
    logins_failed                 logins refused with 401 (wrong email or password)
    tasks_created                 tasks created, by the API or by an import
    imports_completed             import jobs that finished, by final status ...
    imports_failed                ... failed
    imports_cancelled             ... cancelled
    rows_imported                 rows an import turned into tasks
    emails_sent                   emails handed to the SMTP server
    emails_printed                emails written to the worker log instead (no SMTP_HOST, development)
    emails_failed                 emails given up after their last attempt
    webhook_deliveries_delivered  webhook calls answered 2xx
    webhook_deliveries_retrying   webhook calls that failed and will be retried
    webhook_deliveries_failed     webhook calls given up

A name not in COUNTERS is dropped with one error log line: add it here first (this keeps the series
Prometheus sees bounded and catches typos).

The rest of the package: `recorder` (process-local deltas and the atomic flush to Redis), `histogram`
(latency buckets), `snapshot` (reading the aggregate back, worker figures included), `prometheus`
(text exposition), `routes` (the two endpoints). Requests are counted by `service.http.middleware`.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("tasklane.metrics")

COUNTERS: dict[str, str] = {
    "registrations": "Accounts registered.",
    "activations": "Accounts activated with their emailed code.",
    "logins_failed": "Logins refused with 401 (wrong email or password).",
    "tasks_created": "Tasks created, by the API or by imports.",
    "imports_completed": "Import jobs that completed.",
    "imports_failed": "Import jobs that failed.",
    "imports_cancelled": "Import jobs that were cancelled.",
    "rows_imported": "Rows imported as tasks.",
    "emails_sent": "Emails handed to the SMTP server.",
    "emails_printed": "Emails written to the worker log instead of sent (no SMTP_HOST).",
    "emails_failed": "Emails given up after their last attempt.",
    "webhook_deliveries_delivered": "Webhook deliveries answered with 2xx.",
    "webhook_deliveries_retrying": "Webhook deliveries that failed and will be retried.",
    "webhook_deliveries_failed": "Webhook deliveries given up.",
}

_lock = threading.Lock()
_counts: dict[str, int] = {}
_unknown: set[str] = set()


def count(name: str, n: int = 1) -> None:
    """Add `n` to business counter `name` (one of COUNTERS). Never raises, never blocks on I/O."""
    try:
        if name not in COUNTERS:
            if name not in _unknown:
                _unknown.add(name)
                log.error("unknown metrics counter ignored; add it to service.metrics.COUNTERS", extra={"name": name})
            return
        with _lock:
            _counts[name] = _counts.get(name, 0) + int(n)
    except Exception:  # noqa: S110  (metrics never break the caller)  # nosec B110
        pass


def _forget_in_child() -> None:
    # A forked child (Dramatiq forks its worker processes) must not flush its parent's counts again.
    global _counts, _lock
    _counts, _lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_forget_in_child)


def take_counts() -> dict[str, int]:
    """Hand over (and reset) this process's counts not yet given to a flusher."""
    global _counts
    with _lock:
        taken, _counts = _counts, {}
    return taken

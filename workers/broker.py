"""build_broker(): the worker's broker with its middleware, one concern per module in workers/middleware/.

Order matters. Dramatiq runs before_* hooks in this order and after_* hooks in reverse:
- DaemonAsyncIO first, so the event loop exists before any hook that uses it, and stops last;
- CleanStop and Lanes, which shape the worker itself (signals; threads and prefetch per queue);
- RequestContext, then WorkerResources (pool, HTTP client, storage) before the Relay and the
  MetricsFlusher that use them, and closed after they have stopped.
"""

from __future__ import annotations

import dramatiq

from service.config import get_settings
from service.messages import make_broker
from workers.middleware.clean_stop import CleanStop
from workers.middleware.event_loop import DaemonAsyncIO
from workers.middleware.lanes import Lanes
from workers.middleware.metrics import MetricsFlusher
from workers.middleware.relay import Relay
from workers.middleware.request_context import RequestContext
from workers.middleware.resources import WorkerResources


def build_broker() -> dramatiq.Broker:
    """The broker from the settings (Redis, or RabbitMQ with BROKER_URL), with the worker's middleware,
    made Dramatiq's global broker: the one actors are declared on and the `dramatiq` CLI runs."""
    broker = make_broker(get_settings())
    for middleware in (
        DaemonAsyncIO(),
        CleanStop(),
        Lanes(),
        RequestContext(),
        WorkerResources(),
        Relay(),
        MetricsFlusher(),
    ):
        broker.add_middleware(middleware)
    dramatiq.set_broker(broker)
    return broker

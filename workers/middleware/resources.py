"""What actors share inside one worker process: opened when the worker boots, on its event loop, and
closed when it stops. Actors read them from `resources`."""

from __future__ import annotations

import os

import dramatiq
import httpx
from dramatiq.middleware import Middleware

from service.config import get_settings
from service.context import Context
from service.db import Database
from service.imports import pipeline
from service.messages import Dispatcher
from service.notifications import webhooks
from service.notifications.emails import Mailer, mailer_for
from service.storage import clear_scratch, open_store, scratch_dir
from workers.middleware.event_loop import run


class Resources:
    ctx: Context
    mailer: Mailer
    webhook_client: httpx.AsyncClient  # one pool of outbound connections for every webhook delivery


resources = Resources()


class WorkerResources(Middleware):
    """Opens the database pool and the webhooks' HTTP client when the worker boots, closes them when it stops."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        pipeline.stopping.clear()
        settings = get_settings()
        os.makedirs(settings.upload_dir, exist_ok=True)
        clear_scratch(scratch_dir(settings))  # copies of uploads left by a worker killed mid-import
        db = Database(settings.database_url, min_size=settings.database_pool_min, max_size=settings.database_pool_max)
        run(db.connect())
        resources.ctx = Context(settings=settings, db=db, dispatcher=Dispatcher(broker), store=open_store(settings))
        resources.mailer = mailer_for(settings)
        resources.webhook_client = webhooks.make_http_client(settings)

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # An import in progress hands itself back at its next chunk instead of holding up the stop.
        pipeline.stopping.set()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # After hooks run in reverse order, so the AsyncIO loop is still up here, and every worker
        # thread has finished its message: nothing uses the pool any more.
        ctx = getattr(resources, "ctx", None)
        client = getattr(resources, "webhook_client", None)
        if client is not None:
            run(client.aclose())
        if ctx is not None:
            ctx.dispatcher.close()
            run(ctx.db.disconnect())
        pipeline.stopping.clear()  # its work is done; a worker booted later in this process starts afresh

"""The relay: enqueues again the work whose broker message was lost, from the rows that record it.

PostgreSQL is the source of truth: a Redis restart without persistence, a broker outage during a
request or a killed worker may lose a message, but the row that records the work stays due. Every worker
process sweeps every RELAY_INTERVAL seconds (workers/middleware/relay.py runs the loop); a transaction
advisory lock lets one sweep run at a time. Each domain decides what is due (its `redrive`); the sweep
also does the housekeeping: uploads past their retention, Idempotency-Keys past 24 h.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import dramatiq

from service import idempotency
from service.context import Context
from service.db import Queries
from service.imports import pipeline
from service.imports import service as imports
from service.messages import Message, send
from service.notifications import emails, webhooks

log = logging.getLogger("tasklane.relay")
Q = Queries("relay")
LOCK = int.from_bytes(b"tl-relay", "big") >> 1

# Each returns, inside the sweep's transaction, the messages of work whose broker message may be lost.
REDRIVERS: list[Callable[[Context], Awaitable[list[Message]]]] = [emails.redrive, webhooks.redrive, pipeline.redrive]


async def housekeeping(ctx: Context) -> None:
    """Deletes what has outlived its use: uploads past their retention, Idempotency-Keys past 24 h."""
    await imports.purge_uploads(ctx)
    await idempotency.purge_expired(ctx)


async def sweep(ctx: Context, broker: dramatiq.Broker) -> int:
    """One pass of the relay; returns how many messages it enqueued (0 while another process sweeps)."""
    messages: list[Message] = []
    async with ctx.db.transaction():
        if not await ctx.db.fetch_val(Q.try_sweep_lock, key=LOCK):
            return 0
        for redrive in REDRIVERS:
            messages.extend(await redrive(ctx))
        await housekeeping(ctx)
    # Enqueued after commit, off the loop: if the broker is still away, the rows stay due and the next
    # sweep tries again.
    loop = asyncio.get_running_loop()
    for message in messages:
        await loop.run_in_executor(None, send, broker, message)
    if messages:
        log.info("relay re-enqueued messages", extra={"count": len(messages)})
    return len(messages)

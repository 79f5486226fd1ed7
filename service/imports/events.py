"""A job's progress as a stream of events, for GET /imports/{id}/events: the job whenever it changes, until
it has ended (or was deleted). The database is polled: a worker in another process writes the counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from service.context import Context
from service.db import Queries
from service.imports.schemas import import_out
from service.imports.service import TERMINAL, get_job

Q = Queries("imports")
POLL = 0.5  # seconds between looks at the job row
KEEP_ALIVE = 15.0  # seconds without a change after which the stream says it is still there


@dataclass(frozen=True)
class Event:
    """The job as GET /imports/{id} shows it (None: it was deleted); `end` on the last event of a stream."""

    job: dict[str, Any] | None
    end: bool = False


async def job_events(ctx: Context, user_id: UUID, job_id: str) -> AsyncIterator[Event | None]:
    """The events of one of the user's jobs (404 before any, for another user's or an unknown job). None
    in the stream is a keep-alive: nothing changed for KEEP_ALIVE seconds."""
    uid = (await get_job(ctx, user_id, job_id))["id"]
    return _follow(ctx, user_id, uid)


async def _follow(ctx: Context, user_id: UUID, job_id: UUID) -> AsyncIterator[Event | None]:
    seen = None
    quiet_since = time.monotonic()
    while True:
        row = await ctx.db.fetch_one(Q.get_job, id=job_id, user_id=user_id)
        if row is None:
            yield Event(None, end=True)
            return
        job = import_out(row)
        state = (job["status"], job["rows_processed"], job["rows_failed"], job["progress"])
        if state != seen:
            seen, quiet_since = state, time.monotonic()
            yield Event(job)
        if job["status"] in TERMINAL:
            yield Event(job, end=True)
            return
        if time.monotonic() - quiet_since > KEEP_ALIVE:
            quiet_since = time.monotonic()
            yield None
        await asyncio.sleep(POLL)

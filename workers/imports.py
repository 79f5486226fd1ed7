"""The import actor: thin, idempotent, takes the job id only."""

from __future__ import annotations

from uuid import UUID

import dramatiq

from service.imports import pipeline
from service.messages import queue_of
from workers.middleware.resources import resources

SIX_HOURS_MS = 6 * 3600 * 1000


@dramatiq.actor(
    actor_name="imports.process",
    queue_name=queue_of("imports.process"),
    # A failure mid-file (database restart, say) is retried; each try resumes after the last committed chunk.
    max_retries=10,
    min_backoff=1_000,
    max_backoff=60_000,
    time_limit=SIX_HOURS_MS,
)
async def process_import(job_id: str) -> None:
    await pipeline.run_job(resources.ctx, UUID(job_id))

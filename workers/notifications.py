"""Actors that talk to the outside world on the service's behalf."""

from __future__ import annotations

from uuid import UUID

import dramatiq

from service.jobs import QUEUES
from service.notifications import emails
from workers.broker import resources


@dramatiq.actor(
    actor_name="emails.send",
    queue_name=QUEUES["emails.send"],
    max_retries=emails.MAX_ATTEMPTS,
    min_backoff=emails.MIN_BACKOFF_MS,
    max_backoff=emails.MAX_BACKOFF_MS,
)
async def send_email(email_id: str) -> None:
    await emails.deliver(resources.ctx, resources.mailer, UUID(email_id))

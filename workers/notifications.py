"""Actors that talk to the outside world on the service's behalf."""

from __future__ import annotations

from uuid import UUID

import dramatiq

from service import metrics
from service.messages import queue_of
from service.notifications import emails, webhooks
from workers.middleware.resources import resources


@dramatiq.actor(
    actor_name="emails.send",
    queue_name=queue_of("emails.send"),
    max_retries=emails.MAX_ATTEMPTS,
    min_backoff=emails.MIN_BACKOFF_MS,
    max_backoff=emails.MAX_BACKOFF_MS,
)
async def send_email(email_id: str) -> None:
    try:
        await emails.deliver(resources.ctx, resources.mailer, UUID(email_id))
    except emails.DeliveryFailed as exc:
        # Retry on the schedule the delivery recorded (the claim refuses an earlier copy), not Dramatiq's own.
        raise dramatiq.Retry(str(exc), delay=exc.retry_in_ms) from exc


# Retries are scheduled by `webhooks.deliver` itself (it honours Retry-After and records every attempt),
# so Dramatiq never retries this actor; if it raises (database down), the relay re-drives the event.
@dramatiq.actor(actor_name="webhooks.deliver", queue_name=queue_of("webhooks.deliver"), max_retries=0)
async def deliver_webhook(event_id: str) -> None:
    outcome = await webhooks.deliver(resources.ctx, resources.webhook_client, UUID(event_id))
    if outcome != "not-due":
        metrics.count(f"webhook_deliveries_{outcome}")

"""Actors that talk to the outside world on the service's behalf."""

from __future__ import annotations

from uuid import UUID

import dramatiq

from service.accounts.service import mint_for_email
from service.messages import queue_of
from service.notifications import emails, webhooks
from workers.middleware.resources import resources

# Both are outboxes (service.outbox): a delivery records each attempt and enqueues its own retry on its
# schedule, so Dramatiq never retries them; if one raises (database down), the relay re-drives the row.


@dramatiq.actor(actor_name="emails.send", queue_name=queue_of("emails.send"), max_retries=0)
async def send_email(email_id: str) -> None:
    await emails.deliver(resources.ctx, resources.mailer, UUID(email_id), mint_for_email)


@dramatiq.actor(actor_name="webhooks.deliver", queue_name=queue_of("webhooks.deliver"), max_retries=0)
async def deliver_webhook(event_id: str) -> None:
    await webhooks.deliver(resources.ctx, resources.webhook_client, UUID(event_id))

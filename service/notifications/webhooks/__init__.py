"""Signed outbound webhooks: `delivery` (event rows: queue, attempt, re-drive, list attempts), `signing`
(Standard Webhooks), `url_policy` (where a webhook may go: server-side request forgery) and `client` (the
worker's HTTP client, which checks the addresses it connects to). What other packages call is named here.
"""

from service.notifications.webhooks.client import make_http_client
from service.notifications.webhooks.delivery import (
    ACTOR,
    MAX_ATTEMPTS,
    deliver,
    list_attempts,
    queue_import_event,
    redrive,
)
from service.notifications.webhooks.url_policy import (
    MAX_URL_LENGTH,
    URL_PATTERN,
    InvalidWebhookURL,
    validate_url,
)

__all__ = [
    "ACTOR",
    "MAX_ATTEMPTS",
    "MAX_URL_LENGTH",
    "URL_PATTERN",
    "InvalidWebhookURL",
    "deliver",
    "list_attempts",
    "make_http_client",
    "queue_import_event",
    "redrive",
    "validate_url",
]

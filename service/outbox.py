"""Outbox rows: work a service function records in its caller's transaction (an email to send, a webhook
to deliver) and a worker carries out later, from the row's id alone. Emails and webhooks share these
pieces, so both behave the same way:

- Claim: a worker takes the row in one UPDATE before acting, so two messages for one row never act at
  once, and a message that arrives before the row's next attempt is due is refused. A retry may arrive up
  to CLAIM_SLACK seconds early (clocks of two hosts differ) and still be taken.
- Retry: after a failed attempt the row records when the next one is due, and the same code enqueues a
  message delayed by just that (`retry_later`). The schedule lives in the row, so actors are declared
  with max_retries=0: Dramatiq's own retries would keep a second count of attempts, which a copy of the
  message refused as not yet due would spend.
- Re-drive: every pending row's deadline (`next_attempt_at`) is its due time plus RELAY_GRACE, and a claim
  pushes it past the claim's lease. A row whose message was lost (a broker restarted empty, a killed
  worker) is found past its deadline by the relay and enqueued again (`redrive`); a retry that is merely
  waiting is never taken for a lost one.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg

from service.context import Context
from service.logs import request_id_var
from service.messages import Message

CLAIM_SLACK = 1.0  # seconds a retry may arrive before it is due and still be taken
REDRIVE_LIMIT = 500  # rows one relay sweep takes per outbox


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: `base` seconds after the first failed attempt, doubling, at most `cap`, then
    stretched by a random factor in `jitter` so that receivers coming back are not all called at once."""

    base: float
    cap: float = math.inf
    jitter: tuple[float, float] = (1.0, 1.0)

    def nominal(self, attempt: int) -> float:
        """The delay after failed attempt number `attempt` (1 for the first), before jitter."""
        return min(self.cap, self.base * 2 ** max(attempt - 1, 0))

    def delay(self, attempt: int) -> float:
        return self.nominal(attempt) * random.uniform(*self.jitter)  # nosec B311: jitter, not a secret


def message(actor: str, row_id: UUID, delay: float | None = None) -> Message:
    """The message that has `actor` work on one row, `delay` seconds from now."""
    return Message(actor, (str(row_id),), delay_ms=None if delay is None else round(delay * 1000))


async def claim(ctx: Context, query: str, row_id: UUID, **params: Any) -> asyncpg.Record | None:
    """Take a row for one attempt with `query`, which gets `id`, `slack` and `params`; None when it is
    done, not due yet, or another worker holds it. The attempt's log lines carry the id of the request
    that queued the work, also when the relay re-drove it (its message has none)."""
    row = await ctx.db.fetch_one(query, id=row_id, slack=CLAIM_SLACK, **params)
    if row is not None and row["request_id"]:
        request_id_var.set(row["request_id"])
    return row


def retry_later(ctx: Context, actor: str, row_id: UUID, delay: float) -> None:
    """Enqueue the next attempt, once the row records it as due in `delay` seconds (after commit, off the
    loop; if the broker is away, the relay finds the row when its deadline passes)."""
    ctx.dispatcher.dispatch_soon(message(actor, row_id, delay))


async def redrive(ctx: Context, actor: str, query: str, **params: Any) -> list[Message]:
    """Messages for the rows past their deadline, which `query` finds, pushes forward and returns (with
    `id` and `status`); it gets `grace`, `limit` and `params`. Rows it settled otherwise are left alone."""
    rows = await ctx.db.fetch_all(query, grace=ctx.settings.relay_grace, limit=REDRIVE_LIMIT, **params)
    return [message(actor, r["id"]) for r in rows if r["status"] == "pending"]


def describe(exc: BaseException) -> str:
    """What a failed attempt records: the exception's type and message, at most 500 characters."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__

"""Transactional email: queued as outbox rows by the service, rendered and sent by the `emails.send` actor.

Delivery is idempotent: a worker first claims the row (so two copies of one message never send twice
at once), a row marked sent is never sent again, and the Message-ID derives from the row id so a
receiving server can drop the rare duplicate left by a worker killed between sending and recording.

Retries follow one schedule, decided here: after a failed attempt the row records when the next attempt
is due, and the actor asks Dramatiq to retry after exactly that delay. For a pending row,
`next_attempt_at` is that due time plus RELAY_GRACE: the relay re-drives the email only once its retry is
overdue (its message was lost), and a claim refuses a copy of the message that arrives before the retry is
due. So however many messages exist for one email, its attempts keep to the schedule (2 s doubling, 8
attempts over about four minutes) instead of being spent by duplicates.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Protocol
from uuid import UUID

import aiosmtplib
import redis.asyncio as aioredis

from service import metrics
from service.accounts import tokens
from service.config import Settings
from service.context import Context
from service.db import Queries
from service.logs import request_id_var
from service.messages import Message
from service.notifications import inbox

log = logging.getLogger("tasklane.emails")
Q = Queries("emails")
AQ = Queries("accounts")

MAX_ATTEMPTS = 8
MIN_BACKOFF_MS = 2_000
MAX_BACKOFF_MS = 300_000
CLAIM_LEASE = 120  # seconds; longer than one SMTP attempt can take
CLAIM_SLACK = 1.0  # seconds a retry may arrive before it is due (clock skew) and still be taken
JITTER = 0.25  # retry delays are stretched by up to this fraction, so a recovered server is not stampeded


class DeliveryFailed(Exception):
    """A send that failed for a reason that may pass: retry after `retry_in_ms` (the actor does)."""

    def __init__(self, error: str, retry_in_ms: int = MIN_BACKOFF_MS) -> None:
        super().__init__(error)
        self.retry_in_ms = retry_in_ms


@dataclass(frozen=True)
class Outgoing:
    email_id: UUID
    to: str
    subject: str
    body: str


class Mailer(Protocol):
    # What handing a message to this mailer does to it: "sent" (to an SMTP server) or "printed" (to the log).
    outcome: str

    async def send(self, message: Outgoing) -> None: ...


def retry_delay_ms(attempt: int) -> int:
    """The delay between failed attempt `attempt` and the next one, before jitter: 2 s doubling, capped."""
    return min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** max(attempt - 1, 0))


async def queue(ctx: Context, kind: str, account_id: UUID, to_address: str) -> Message:
    """Record an email in the caller's transaction; dispatch the returned message after commit."""
    email_id = await ctx.db.fetch_val(
        Q.queue_email,
        account_id=account_id,
        kind=kind,
        to_address=to_address,
        request_id=request_id_var.get(),
        grace=ctx.settings.relay_grace,
    )
    return Message("emails.send", (str(email_id),))


async def _render(ctx: Context, email_id: UUID, kind: str, account_id: UUID, to: str) -> Outgoing | None:
    s = ctx.settings
    if kind == "activation":
        code = tokens.new_code()
        stored = await ctx.db.fetch_val(
            AQ.set_activation_code,
            id=account_id,
            code_hash=tokens.code_digest(s.secret_key, account_id, code),
            ttl=s.activation_code_ttl,
        )
        if stored is None:
            return None
        return Outgoing(
            email_id,
            to,
            f"Your tasklane activation code: {code}",
            f"Welcome to tasklane!\n\nYour activation code is {code}. It is valid for "
            f"{s.activation_code_ttl} seconds.\n\nIf it expires, ask for a new one with "
            f"POST {s.public_base_url}/api/v1/users/activation-code.\n",
        )
    if kind == "welcome":
        return Outgoing(
            email_id,
            to,
            "Your tasklane account is active",
            f"Your account {to} is active. Log in at {s.public_base_url}/api/v1/auth/login.\n",
        )
    if kind == "password_reset":
        token = tokens.new_opaque_token()
        await ctx.db.execute(
            AQ.insert_reset_token, token_hash=tokens.digest(token), account_id=account_id, ttl=s.password_reset_ttl
        )
        return Outgoing(
            email_id,
            to,
            "Reset your tasklane password",
            "Someone asked to reset the password of this tasklane account. If it was you, send\n\n"
            f"POST {s.public_base_url}/api/v1/auth/password-reset/confirm\n"
            f'{{"token": "{token}", "password": "<your new password>"}}\n\n'
            f"The token works once, within {s.password_reset_ttl // 60} minutes. "
            "If it was not you, ignore this email.\n",
        )
    raise ValueError(f"unknown email kind {kind!r}")


async def deliver(ctx: Context, mailer: Mailer, email_id: UUID) -> str:
    """Send one queued email; returns what happened. Raises DeliveryFailed when a retry should follow."""
    row = await ctx.db.fetch_one(
        Q.claim_email, id=email_id, lease=CLAIM_LEASE, grace=ctx.settings.relay_grace, slack=CLAIM_SLACK
    )
    if row is None:
        return "not-due"  # sent, given up, unknown, another worker holds it, or its retry is not due yet
    if row["request_id"]:
        request_id_var.set(row["request_id"])  # also when the relay re-drove it without one
    account_id = row["account_id"]
    message = None
    if account_id is not None:
        message = await _render(ctx, email_id, row["kind"], account_id, row["to_address"])
    if message is None:
        await ctx.db.execute(Q.mark_email_skipped, id=email_id, reason="no longer needed")
        return "skipped"
    try:
        await mailer.send(message)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        if row["attempts"] >= MAX_ATTEMPTS:
            await ctx.db.execute(Q.mark_email_failed, id=email_id, error=error)
            log.error("email given up", extra={"email_id": str(email_id), "attempts": row["attempts"], "error": error})
            metrics.count("emails_failed")
            return "failed"
        retry_in_ms = round(retry_delay_ms(row["attempts"]) * random.uniform(1, 1 + JITTER))
        await ctx.db.execute(
            Q.mark_email_retry, id=email_id, error=error, retry_in=retry_in_ms / 1000, grace=ctx.settings.relay_grace
        )
        raise DeliveryFailed(error, retry_in_ms) from exc
    await ctx.db.execute(Q.mark_email_sent, id=email_id)
    extra = {"email_id": str(email_id), "kind": row["kind"]}
    if mailer.outcome == "printed":
        # The one line for this email, its text included: no SMTP server received it.
        extra |= {"to": message.to, "subject": message.subject, "body": message.body}
        log.info("email printed, not sent (no SMTP_HOST)", extra=extra)
    else:
        log.info("email sent", extra=extra)
    metrics.count(f"emails_{mailer.outcome}")
    return mailer.outcome


async def redrive(ctx: Context, limit: int = 500) -> list[Message]:
    """Jobs for emails whose message was lost (Redis restart, killed worker)."""
    rows = await ctx.db.fetch_all(Q.due_emails, grace=ctx.settings.relay_grace, limit=limit)
    return [Message("emails.send", (str(r["id"]),)) for r in rows]


def _build(settings: Settings, message: Outgoing) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = settings.email_from
    msg["To"] = message.to
    msg["Subject"] = message.subject
    msg["Date"] = formatdate(localtime=False)
    domain = parseaddr(settings.email_from)[1].rpartition("@")[2] or "tasklane.localhost"
    msg["Message-ID"] = f"<{message.email_id}@{domain}>"
    msg.set_content(message.body)
    return msg


class SMTPMailer:
    outcome = "sent"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: Outgoing) -> None:
        s = self.settings
        await aiosmtplib.send(
            _build(s, message),
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_user or None,
            password=s.smtp_password or None,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout,
        )


class LogMailer:
    """Development stand-in when no SMTP_HOST is set: `deliver` prints the email to the worker log (one
    line with its text), and in development it is also kept for GET /dev/mail. Never used when
    SMTP_HOST is set."""

    outcome = "printed"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: Outgoing) -> None:
        if not self.settings.dev_inbox:
            return
        # A client per email: development volumes, and nothing left to close when the worker stops.
        async with aioredis.Redis.from_url(self.settings.redis_url, socket_timeout=5) as client:
            await inbox.keep(
                client,
                {"id": str(message.email_id), "to": message.to, "subject": message.subject, "body": message.body},
            )


def mailer_for(settings: Settings) -> Mailer:
    return SMTPMailer(settings) if settings.smtp_host else LogMailer(settings)

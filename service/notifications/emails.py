"""Transactional email: queued as outbox rows by the service, rendered and sent by the `emails.send` actor.

Delivery is idempotent: a worker first claims the row (so two copies of one message never send twice
at once), a row marked sent is never sent again, and the Message-ID derives from the row id so a
receiving server can drop the rare duplicate left by a worker killed between sending and recording.

What an email carries that must be fresh when it is sent (an activation code valid 60 s, a reset token) is
minted by the accounts domain, which owns those tables: `deliver` is handed its `Mint`. This module only
renders the text and sends it.

Retries follow the outbox's one mechanism (service.outbox): after a failed attempt the row records when
the next one is due and a message delayed by that is enqueued; 2 s doubling, 8 attempts over about four
minutes, however many copies of a message exist.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Literal, Protocol
from uuid import UUID

import aiosmtplib
import asyncpg
import redis.asyncio as aioredis

from service import metrics, outbox
from service.config import Settings
from service.context import Context
from service.db import Queries
from service.logs import request_id_var
from service.messages import Message
from service.notifications import inbox

log = logging.getLogger("tasklane.emails")
Q = Queries("emails")

ACTOR = "emails.send"
MAX_ATTEMPTS = 8
# 2 s doubling up to 5 minutes, each delay stretched by up to 25% so a recovered server is not stampeded.
BACKOFF = outbox.Backoff(base=2.0, cap=300.0, jitter=(1.0, 1.25))
CLAIM_LEASE = 120  # seconds; longer than one SMTP attempt can take
KINDS = frozenset({"activation", "welcome", "password_reset"})

# What one delivery call did; "not-due" means no attempt was made (sent, given up, unknown, held by
# another worker, or its retry is not due yet).
SendResult = Literal["sent", "printed", "skipped", "retrying", "failed", "not-due"]
# What the accounts domain puts in an email of `kind` to `account_id`, minted as it is sent ({"code": ...},
# {"token": ...}, or nothing); None when the email is no longer needed (the account is already active).
Mint = Callable[[Context, str, UUID], Awaitable[Mapping[str, str] | None]]


@dataclass(frozen=True)
class Outgoing:
    email_id: UUID
    to: str
    subject: str
    body: str


class Mailer(Protocol):
    # What handing a message to this mailer does to it: "sent" (to an SMTP server) or "printed" (to the log).
    outcome: Literal["sent", "printed"]

    async def send(self, message: Outgoing) -> None: ...


async def queue(ctx: Context, kind: str, account_id: UUID, to_address: str) -> Message:
    """Record an email in the caller's transaction; dispatch the returned message after commit."""
    if kind not in KINDS:
        raise ValueError(f"unknown email kind {kind!r}")
    email_id = await ctx.db.fetch_val(
        Q.queue_email,
        account_id=account_id,
        kind=kind,
        to_address=to_address,
        request_id=request_id_var.get(),
        grace=ctx.settings.relay_grace,
    )
    return outbox.message(ACTOR, email_id)


def render(settings: Settings, kind: str, to: str, values: Mapping[str, str]) -> tuple[str, str]:
    """Subject and text of an email of `kind`, with what was minted for it."""
    s = settings
    if kind == "activation":
        code = values["code"]
        return (
            f"Your tasklane activation code: {code}",
            f"Welcome to tasklane!\n\nYour activation code is {code}. It is valid for "
            f"{s.activation_code_ttl} seconds.\n\nIf it expires, ask for a new one with "
            f"POST {s.public_base_url}/api/v1/users/activation-code.\n",
        )
    if kind == "welcome":
        return (
            "Your tasklane account is active",
            f"Your account {to} is active. Log in at {s.public_base_url}/api/v1/auth/login.\n",
        )
    if kind == "password_reset":
        return (
            "Reset your tasklane password",
            "Someone asked to reset the password of this tasklane account. If it was you, send\n\n"
            f"POST {s.public_base_url}/api/v1/auth/password-reset/confirm\n"
            f'{{"token": "{values["token"]}", "password": "<your new password>"}}\n\n'
            f"The token works once, within {s.password_reset_ttl // 60} minutes. "
            "If it was not you, ignore this email.\n",
        )
    raise ValueError(f"unknown email kind {kind!r}")


async def _compose(ctx: Context, row: asyncpg.Record, email_id: UUID, mint: Mint) -> Outgoing | None:
    account_id, kind, to = row["account_id"], row["kind"], row["to_address"]
    if account_id is None:
        return None  # the account was deleted
    if kind not in KINDS:
        raise ValueError(f"unknown email kind {kind!r}")
    values = await mint(ctx, kind, account_id)
    if values is None:
        return None
    return Outgoing(email_id, to, *render(ctx.settings, kind, to, values))


async def deliver(ctx: Context, mailer: Mailer, email_id: UUID, mint: Mint) -> SendResult:
    """Make one attempt at sending a queued email, if it is due; returns what happened."""
    row = await outbox.claim(ctx, Q.claim_email, email_id, lease=CLAIM_LEASE, grace=ctx.settings.relay_grace)
    if row is None:
        return "not-due"
    message = await _compose(ctx, row, email_id, mint)
    if message is None:
        await ctx.db.execute(Q.mark_email_skipped, id=email_id, reason="no longer needed")
        return "skipped"
    extra = {"email_id": str(email_id), "kind": row["kind"]}
    try:
        await mailer.send(message)
    except Exception as exc:
        return await _failed(ctx, email_id, row["attempts"], outbox.describe(exc))
    await ctx.db.execute(Q.mark_email_sent, id=email_id)
    if mailer.outcome == "printed":
        # The one line for this email, its text included: no SMTP server received it.
        extra |= {"to": message.to, "subject": message.subject, "body": message.body}
        log.info("email printed, not sent (no SMTP_HOST)", extra=extra)
    else:
        log.info("email sent", extra=extra)
    metrics.count(f"emails_{mailer.outcome}")
    return mailer.outcome


async def _failed(ctx: Context, email_id: UUID, attempt: int, error: str) -> SendResult:
    """Record a failed attempt: given up after the last one, else retried on the schedule."""
    extra = {"email_id": str(email_id), "attempts": attempt, "error": error}
    if attempt >= MAX_ATTEMPTS:
        await ctx.db.execute(Q.mark_email_failed, id=email_id, error=error)
        log.error("email given up", extra=extra)
        metrics.count("emails_failed")
        return "failed"
    delay = BACKOFF.delay(attempt)
    grace = ctx.settings.relay_grace
    await ctx.db.execute(Q.mark_email_retry, id=email_id, error=error, retry_in=delay, grace=grace)
    outbox.retry_later(ctx, ACTOR, email_id, delay)
    log.info("email attempt failed, retrying", extra={**extra, "retry_in": round(delay, 3)})
    return "retrying"


async def redrive(ctx: Context) -> list[Message]:
    """Messages for emails whose message was lost (Redis restart, killed worker); for the relay."""
    return await outbox.redrive(ctx, ACTOR, Q.due_emails)


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
    outcome: Literal["sent", "printed"] = "sent"

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

    outcome: Literal["sent", "printed"] = "printed"

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

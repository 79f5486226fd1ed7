"""Email delivery: idempotent, retried, never silently dropped, and re-driven when its message is lost."""

from __future__ import annotations

import asyncio
import dataclasses

from service.notifications import emails
from service.notifications.emails import MAX_ATTEMPTS, SMTPMailer
from tests.support import (
    AppClient,
    db_execute,
    db_value,
    delayed_messages,
    eventually,
    fail_every_attempt,
    free_port,
    log_records,
    queue_size,
    register,
    running_worker,
    send_email,
    worker_broker,
)

EMAIL = "frank@example.com"


async def _queued_email(client, ctx):
    assert (await register(client, EMAIL)).status_code == 201
    return await db_value(ctx, "SELECT id FROM emails WHERE to_address = $1", EMAIL)


async def test_refused_email_is_retried_then_delivered_once(client, ctx, smtp):
    email_id = await _queued_email(client, ctx)
    smtp.refusing = True
    assert await send_email(ctx, email_id) == "retrying"
    assert await db_value(ctx, "SELECT status || ':' || attempts FROM emails WHERE id = $1", email_id) == "pending:1"
    assert "451" in await db_value(ctx, "SELECT last_error FROM emails WHERE id = $1", email_id)
    smtp.refusing = False
    await db_execute(ctx, "UPDATE emails SET next_attempt_at = now()")  # the backoff has passed
    assert await send_email(ctx, email_id) == "sent"
    assert len(smtp.to(EMAIL)) == 1


async def test_a_copy_of_the_message_before_the_retry_is_due_spends_no_attempt(client, ctx, smtp):
    from service.relay import sweep

    broker = worker_broker()

    email_id = await _queued_email(client, ctx)
    await ctx.dispatcher.drain()
    smtp.refusing = True
    with log_records("tasklane.emails") as records:
        assert await send_email(ctx, email_id) == "retrying"
    [line] = [r for r in records if r.getMessage() == "email attempt failed, retrying"]
    # The retry is scheduled by the delivery itself: 2 s for the first, with at most 25% jitter
    assert 2.0 <= line.retry_in <= 2.5
    # as a message of its own, waiting for its time in the broker
    await ctx.dispatcher.drain()
    [retry] = delayed_messages(broker, "emails.send")
    assert (retry.actor_name, retry.args) == ("emails.send", (str(email_id),))
    # A second message for the email (a relay re-drive, a duplicate) arriving before then is refused
    assert await send_email(ctx, email_id) == "not-due"
    assert await db_value(ctx, "SELECT attempts FROM emails WHERE id = $1", email_id) == 1
    # and the relay does not take the scheduled retry for a lost message
    broker.flush("emails")
    assert await sweep(ctx, broker) == 0
    overdue_in = await db_value(ctx, "SELECT extract(epoch FROM next_attempt_at - now()) FROM emails")
    assert line.retry_in < overdue_in <= line.retry_in + ctx.settings.relay_grace


async def test_email_that_keeps_failing_is_recorded_as_failed_not_dropped(client, ctx, smtp):
    email_id = await _queued_email(client, ctx)
    smtp.refusing = True
    assert await fail_every_attempt(ctx, email_id) == "failed"
    row = await db_value(ctx, "SELECT status || ':' || attempts FROM emails WHERE id = $1", email_id)
    assert row == f"failed:{MAX_ATTEMPTS}"
    assert MAX_ATTEMPTS >= 5


async def test_unreachable_smtp_server_is_a_retryable_failure(client, ctx, smtp):
    email_id = await _queued_email(client, ctx)
    nowhere = SMTPMailer(dataclasses.replace(ctx.settings, smtp_port=free_port(), smtp_timeout=2))
    assert await send_email(ctx, email_id, nowhere) == "retrying"


async def test_duplicate_messages_send_one_email(client, ctx, smtp):
    email_id = await _queued_email(client, ctx)
    outcomes = await asyncio.gather(*(send_email(ctx, email_id) for _ in range(4)))
    assert sorted(outcomes) == ["not-due", "not-due", "not-due", "sent"]
    assert await send_email(ctx, email_id) == "not-due"
    # The sink keeps a message before it answers 250, so every email sent by now is in it.
    assert len(smtp.to(EMAIL)) == 1


async def test_relay_re_enqueues_only_overdue_emails_once_per_grace_period(client, ctx):
    from service.relay import sweep

    broker = worker_broker()

    email_id = await _queued_email(client, ctx)
    await ctx.dispatcher.drain()  # the request's own enqueue happens in the background: let it land first
    broker.flush("emails")
    # Not yet overdue: the request's own enqueue is trusted for RELAY_GRACE seconds
    await db_execute(ctx, "UPDATE emails SET next_attempt_at = now() + interval '1 hour'")
    assert await sweep(ctx, broker) == 0
    # Overdue (its message was lost): re-enqueued once, and not again until the grace period passes
    await db_execute(ctx, "UPDATE emails SET next_attempt_at = now() - interval '1 second'")
    assert await sweep(ctx, broker) == 1
    assert await sweep(ctx, broker) == 0
    assert broker.do_qsize("emails") == 1
    # A worker that died while sending leaves a lapsed claim: that is re-driven too
    await db_execute(ctx, "UPDATE emails SET status = 'sending', next_attempt_at = now() - interval '1 second'")
    assert await sweep(ctx, broker) == 1
    assert await db_value(ctx, "SELECT status FROM emails WHERE id = $1", email_id) == "pending"


async def test_worker_sends_the_activation_email_the_request_queued(client, ctx, smtp, worker):
    await _queued_email(client, ctx)
    message = (await smtp.wait_for(EMAIL))[0]
    assert "activation code" in message["Subject"]
    assert await eventually(lambda: db_value(ctx, "SELECT status = 'sent' FROM emails"))


async def test_registration_succeeds_with_the_broker_down_and_the_relay_delivers_later(
    database, settings, ctx, smtp, clean
):
    # Given the web process cannot reach Redis at all
    down = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with AppClient.start(down) as app:
        responses = [await register(app.http, f"user{i}@example.com") for i in range(3)]
    # Then every registration still answers 201 (rate limits fail open, the enqueue is dropped)
    assert [r.status_code for r in responses] == [201, 201, 201]
    assert await db_value(ctx, "SELECT count(*) FROM emails WHERE status = 'pending'") == 3
    # When a worker with a working broker comes up, its relay finds the lost jobs
    with running_worker() as broker:
        for i in range(3):
            await smtp.wait_for(f"user{i}@example.com", timeout=20)
        # Every email is in its final state (a sent row is neither claimed nor re-driven again), and every
        # message the relay enqueued for them has been handled: nothing is left that could send twice.
        await eventually(lambda: db_value(ctx, "SELECT bool_and(status = 'sent') FROM emails"), 20, "all sent")
        await eventually(lambda: queue_size(broker, "emails.send") == 0, 20, "the emails queue drained")
    assert [len(smtp.to(f"user{i}@example.com")) for i in range(3)] == [1, 1, 1]
    assert await db_value(ctx, "SELECT count(*) FROM emails WHERE status = 'sent' AND attempts = 1") == 3


def test_retry_delays_grow_exponentially_with_a_cap():
    delays = [emails.BACKOFF.nominal(n) for n in range(1, 12)]
    assert delays[:4] == [2.0, 4.0, 8.0, 16.0]
    assert max(delays) == emails.BACKOFF.cap == 300.0
    # Jitter only stretches a delay, by at most 25%
    assert all(2.0 <= emails.BACKOFF.delay(1) <= 2.5 for _ in range(200))

"""Signed webhooks: Standard Webhooks signatures, retries with backoff and Retry-After, stored attempts,
server-side request forgery refused, lost messages re-driven, duplicates delivered once; against a real
HTTP receiver, and end to end through a real Dramatiq worker."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service.config import get_settings
from service.context import Context
from service.errors import Unprocessable
from service.messages import Message
from service.notifications.webhooks import delivery, signing, url_policy
from service.notifications.webhooks.client import ForbiddenAddress, make_http_client
from service.notifications.webhooks.delivery import (
    LOST_ATTEMPT,
    MAX_ATTEMPTS,
    deliver,
    list_attempts,
    queue_import_event,
)
from service.notifications.webhooks.signing import sign
from service.notifications.webhooks.url_policy import InvalidWebhookURL, validate_url
from tests.receiver import Reply
from tests.support import (
    db_execute,
    db_value,
    eventually,
    free_port,
    insert_account,
    log_records,
    queue_size,
    running_worker,
    worker_broker,
)

DATA = {"status": "completed", "rows_processed": 10, "rows_imported": 9, "rows_failed": 1}
HANG = 30  # seconds a hanging receiver waits before it answers: far beyond any attempt's limit


@pytest.fixture
async def http(settings) -> AsyncIterator[httpx.AsyncClient]:
    client = make_http_client(settings)
    yield client
    await client.aclose()


async def _account(ctx: Context) -> uuid.UUID:
    async with ctx.db.connection() as conn:
        return await insert_account(conn, f"{uuid.uuid4()}@example.com", active=False)


async def _job(ctx: Context, user_id: uuid.UUID) -> uuid.UUID:
    """An import job row for events to be about (their subject)."""
    return await db_value(
        ctx,
        "INSERT INTO import_jobs (id, user_id, filename, kind, stored_path, size_bytes)"
        " VALUES ($1, $2, 'tasks.csv', 'csv', '/nonexistent', 1) RETURNING id",
        uuid.uuid4(),
        user_id,
    )


async def _queue(
    ctx: Context, url: str, *, user_id: uuid.UUID | None = None, job_id: uuid.UUID | None = None, **kw: Any
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Queue an import.completed event as the import engineer will: in a transaction. Returns ids of the
    event, the job and the user. The job is not dispatched (tests drive delivery themselves)."""
    user_id = user_id or await _account(ctx)
    job_id = job_id or await _job(ctx, user_id)
    async with ctx.db.transaction():
        job = await queue_import_event(
            ctx,
            job_id=job_id,
            user_id=user_id,
            url=url,
            event_type=kw.pop("event_type", "import.completed"),
            data={**DATA, "finished_at": datetime.now(UTC), **kw},
        )
    assert job.actor == "webhooks.deliver"
    return uuid.UUID(job.args[0]), job_id, user_id


async def _event(ctx: Context, event_id: uuid.UUID) -> dict[str, Any]:
    async with ctx.db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT *, extract(epoch FROM not_before - now()) AS due_in FROM webhook_events WHERE id = $1", event_id
        )
    return dict(row)


async def _attempts(ctx: Context, event_id: uuid.UUID) -> list[dict[str, Any]]:
    async with ctx.db.connection() as conn:
        rows = await conn.fetch("SELECT * FROM webhook_attempts WHERE event_id = $1 ORDER BY attempt", event_id)
    return [dict(r) for r in rows]


async def _make_due(ctx: Context, event_id: uuid.UUID) -> None:
    """The backoff has passed."""
    await db_execute(ctx, "UPDATE webhook_events SET not_before = now() WHERE id = $1", event_id)


def _with(ctx: Context, **settings: Any) -> Context:
    return dataclasses.replace(ctx, settings=dataclasses.replace(ctx.settings, **settings))


# --- Signing -----------------------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_reference_vector_and_library():
    # The published Standard Webhooks test vector
    assert (
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )
    secret = "whsec_dGVzdC13ZWJob29rLXNlY3JldC0wMTIzNDU2Nzg5YWI="
    body = b'{"data":{"job_id":"x"},"type":"import.completed"}'
    ts = int(time.time())
    library = Webhook(secret)
    assert sign(secret, "evt-1", ts, body) == library.sign("evt-1", datetime.fromtimestamp(ts, UTC), body.decode())
    headers = signing.signed_headers(secret, "evt-1", body)
    assert library.verify(body, headers) == {"data": {"job_id": "x"}, "type": "import.completed"}
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        library.verify(body + b" ", headers)


def test_retry_delays_double_from_the_base_with_jitter_and_retry_after_is_capped(settings):
    s = dataclasses.replace(settings, webhook_retry_base=2.0, webhook_retry_after_cap=300.0)
    for attempt, nominal in [(1, 2.0), (2, 4.0), (3, 8.0)]:
        delays = [delivery.retry_delay(s, attempt) for _ in range(200)]
        assert all(nominal * 0.8 <= d <= nominal * 1.2 for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert delivery.retry_delay(s, 1, retry_after=30) == 30
    assert delivery.retry_delay(s, 1, retry_after=86400) == 300


def test_retry_after_is_read_as_seconds_or_an_http_date():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert delivery.parse_retry_after("120") == 120
    assert delivery.parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert delivery.parse_retry_after(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0
    assert delivery.parse_retry_after("soon") is None
    assert delivery.parse_retry_after("-5") is None
    assert delivery.parse_retry_after(None) is None


# --- URL validation (server-side request forgery) ------------------------------------------------------

NON_PUBLIC = [
    "http://127.0.0.1/hook",
    "http://127.8.9.10:8080/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://172.31.255.254/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0/",
    "http://100.64.0.1/",
    "http://224.0.0.1/",
    "http://[::1]/hook",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/",
    "http://[::]/",
    "http://localhost:8000/hook",
    "http://2130706433/hook",  # 127.0.0.1 written as one number
    "http://0x7f.1/hook",
]
MALFORMED = [
    "",
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "example.com/hook",
    "http:///hook",
    "http://user:secret@example.com/hook",
    "http://user@8.8.8.8/hook",
    "http://exa mple.com/hook",
    "http://example.com/\nhook",
    "https://8.8.8.8/" + "a" * 2048,
]
PUBLIC = ["https://8.8.8.8/hooks/tasklane", "http://[2606:4700:4700::1111]:8443/h?x=1", "https://1.1.1.1"]


@pytest.mark.parametrize("url", NON_PUBLIC)
async def test_non_public_addresses_are_refused_unless_allowed(url):
    with pytest.raises(InvalidWebhookURL) as refused:
        await validate_url(url, allow_private=False)
    assert refused.value.status == 422
    assert "public" in refused.value.detail
    assert refused.value.errors == [{"field": "webhook_url", "message": refused.value.detail}]
    assert await validate_url(url, allow_private=True)


@pytest.mark.parametrize("url", MALFORMED)
async def test_malformed_urls_are_refused_even_when_private_addresses_are_allowed(url):
    for allow in (False, True):
        with pytest.raises(InvalidWebhookURL) as refused:
            await validate_url(url, allow_private=allow)
        assert isinstance(refused.value, Unprocessable) and refused.value.detail


@pytest.mark.parametrize("url", PUBLIC)
async def test_public_addresses_are_accepted(url):
    assert await validate_url(url, allow_private=False) == str(httpx.URL(url))


async def test_refusal_messages_say_what_is_wrong():
    cases = {
        "ftp://example.com/": "http:// or https://",
        "http://u:p@example.com/": "user name or password",
        "https://8.8.8.8/" + "a" * 2048: "longer than 2048",
        "http://localhost/": "localhost (127.0.0.1)",
        "http://no-such-host.invalid/": "cannot be resolved",
    }
    for url, expected in cases.items():
        with pytest.raises(InvalidWebhookURL, match=expected.replace("(", r"\(").replace(")", r"\)")):
            await validate_url(url, allow_private=False)


def test_ipv4_carried_in_ipv6_is_judged_as_ipv4():
    import ipaddress

    def forbidden(a: str) -> bool:
        return url_policy.is_forbidden_address(ipaddress.ip_address(a))

    assert forbidden("64:ff9b::7f00:1")  # NAT64 of 127.0.0.1
    assert forbidden("2002:7f00:1::")  # 6to4 of 127.0.0.1
    assert forbidden("::ffff:10.0.0.1")
    assert forbidden("fec0::1")  # site-local
    assert not forbidden("::ffff:8.8.8.8")
    assert not forbidden("64:ff9b::808:808")
    assert not forbidden("8.8.8.8")


# --- Queueing ----------------------------------------------------------------------------------------


async def test_queued_event_holds_the_spec_payload_and_queueing_twice_is_a_no_op(ctx, clean):
    finished = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    event_id, job_id, user_id = await _queue(ctx, "https://8.8.8.8/h", finished_at=finished)
    event = await _event(ctx, event_id)
    assert (event["subject_id"], event["user_id"], event["url"]) == (job_id, user_id, "https://8.8.8.8/h")
    assert (event["status"], event["attempts"], event["type"]) == ("pending", 0, "import.completed")
    payload = event["payload"]
    assert set(payload) == {"type", "timestamp", "data"}
    assert payload["type"] == "import.completed"
    assert datetime.fromisoformat(payload["timestamp"]) > finished
    assert payload["data"] == {
        "job_id": str(job_id),
        "status": "completed",
        "rows_processed": 10,
        "rows_imported": 9,
        "rows_failed": 1,
        "finished_at": "2026-03-01T10:30:00Z",
        "completed_at": "2026-03-01T10:30:00Z",
    }
    # The same job ending again (a retried import) does not make a second event
    again, _, _ = await _queue(ctx, "https://8.8.8.8/h", job_id=job_id, user_id=user_id)
    assert again == event_id
    assert await db_value(ctx, "SELECT count(*) FROM webhook_events") == 1
    # Another type for the same job is another event
    other, _, _ = await _queue(ctx, "https://8.8.8.8/h", job_id=job_id, user_id=user_id, event_type="import.failed")
    assert other != event_id


async def test_queueing_refuses_programming_errors(ctx, clean):
    user_id = await _account(ctx)
    common = {"job_id": uuid.uuid4(), "user_id": user_id, "url": "https://8.8.8.8/"}
    with pytest.raises(ValueError, match="unknown import event type"):
        await queue_import_event(ctx, **common, event_type="import.exploded", data={})
    with pytest.raises(ValueError, match="lacks rows_processed"):
        await queue_import_event(ctx, **common, event_type="import.failed", data={"status": "failed"})


async def test_an_event_rolled_back_with_its_transaction_is_not_queued(ctx, clean):
    user_id = await _account(ctx)

    async def failing_import() -> None:
        async with ctx.db.transaction():
            await queue_import_event(
                ctx,
                job_id=await _job(ctx, user_id),
                user_id=user_id,
                url="https://8.8.8.8/",
                event_type="import.cancelled",
                data={**DATA, "status": "cancelled", "finished_at": datetime.now(UTC)},
            )
            raise RuntimeError("the import's transaction fails")

    with pytest.raises(RuntimeError):
        await failing_import()
    assert await db_value(ctx, "SELECT count(*) FROM webhook_events") == 0


# --- Delivery against a real receiver ------------------------------------------------------------------


async def test_500_500_200_is_delivered_on_the_third_attempt_with_one_webhook_id(ctx, clean, http, webhook_receiver):
    receiver = webhook_receiver([500, 500, 200])
    event_id, job_id, user_id = await _queue(ctx, receiver.url)

    assert await deliver(ctx, http, event_id) == "retrying"
    event = await _event(ctx, event_id)
    assert (event["status"], event["attempts"], event["last_error"]) == ("pending", 1, "HTTP 500")
    assert 0 < event["due_in"] <= 0.2 * 1.2  # WEBHOOK_RETRY_BASE=0.2 in tests, +/-20% jitter
    # A copy of the message arriving before the retry is due does nothing
    await db_execute(ctx, "UPDATE webhook_events SET not_before = now() + interval '1 hour'")
    assert await deliver(ctx, http, event_id) == "not-due"
    assert len(receiver.received()) == 1

    await _make_due(ctx, event_id)
    assert await deliver(ctx, http, event_id) == "retrying"
    assert 0 < (await _event(ctx, event_id))["due_in"] <= 0.4 * 1.2  # doubled
    await _make_due(ctx, event_id)
    assert await deliver(ctx, http, event_id) == "delivered"
    assert await deliver(ctx, http, event_id) == "not-due"

    requests = receiver.received()
    assert len(requests) == 3
    assert {r.headers["webhook-id"] for r in requests} == {str(event_id)}
    assert len({r.body for r in requests}) == 1  # the same bytes every time
    for r in requests:
        assert r.method == "POST" and r.path == "/hooks/tasklane"
        assert r.headers["content-type"] == "application/json"
        assert r.headers["user-agent"] == "tasklane-webhooks/0.1"
        assert abs(int(r.headers["webhook-timestamp"]) - time.time()) < 10
        body = r.verify(ctx.settings.webhook_secret)
        assert body["type"] == "import.completed"
        assert body["data"]["job_id"] == str(job_id)
        assert body["data"]["rows_imported"] == 9

    event = await _event(ctx, event_id)
    assert (event["status"], event["attempts"], event["last_error"]) == ("delivered", 3, None)
    assert event["delivered_at"] is not None
    items = await list_attempts(ctx, job_id, user_id)
    assert [(i["attempt"], i["status_code"], i["error"]) for i in items] == [
        (1, 500, "HTTP 500"),
        (2, 500, "HTTP 500"),
        (3, 200, None),
    ]
    assert all(set(i) == {"attempt", "status_code", "error", "duration_ms", "created_at"} for i in items)
    assert all(isinstance(i["duration_ms"], int) and i["duration_ms"] >= 0 for i in items)
    assert [a["outcome"] for a in await _attempts(ctx, event_id)] == ["retrying", "retrying", "delivered"]


async def test_a_4xx_answer_is_final_after_one_attempt(ctx, clean, http, webhook_receiver):
    receiver = webhook_receiver([410])
    event_id, job_id, user_id = await _queue(ctx, receiver.url)
    assert await deliver(ctx, http, event_id) == "failed"
    assert await deliver(ctx, http, event_id) == "not-due"
    assert len(receiver.received()) == 1
    event = await _event(ctx, event_id)
    assert (event["status"], event["attempts"], event["last_error"]) == ("failed", 1, "HTTP 410")
    assert [(i["attempt"], i["status_code"]) for i in await list_attempts(ctx, job_id, user_id)] == [(1, 410)]
    assert [a["outcome"] for a in await _attempts(ctx, event_id)] == ["failed"]


async def test_429_with_retry_after_is_retried_after_the_given_time_within_the_cap(ctx, clean, http, webhook_receiver):
    receiver = webhook_receiver([Reply(429, {"Retry-After": "3"}), Reply(503, {"Retry-After": "3600"}), 200])
    event_id, job_id, user_id = await _queue(ctx, receiver.url)
    assert await deliver(ctx, http, event_id) == "retrying"
    assert 2.5 <= (await _event(ctx, event_id))["due_in"] <= 3.0
    assert await deliver(ctx, http, event_id) == "not-due"  # not before the receiver asked

    await _make_due(ctx, event_id)
    capped = _with(ctx, webhook_retry_after_cap=7.0)
    assert await deliver(capped, http, event_id) == "retrying"
    assert 6.5 <= (await _event(ctx, event_id))["due_in"] <= 7.0  # an hour asked, the cap given

    await _make_due(ctx, event_id)
    assert await deliver(ctx, http, event_id) == "delivered"
    assert [i["status_code"] for i in await list_attempts(ctx, job_id, user_id)] == [429, 503, 200]


async def test_network_errors_are_retried_three_times_then_the_event_fails(ctx, clean, http):
    closed = f"http://127.0.0.1:{free_port()}/hook"
    event_id, job_id, user_id = await _queue(ctx, closed)
    outcomes = []
    for _ in range(MAX_ATTEMPTS):
        outcomes.append(await deliver(ctx, http, event_id))
        await _make_due(ctx, event_id)
    assert outcomes == ["retrying", "retrying", "retrying", "failed"]
    assert await deliver(ctx, http, event_id) == "not-due"
    items = await list_attempts(ctx, job_id, user_id)
    assert [i["attempt"] for i in items] == [1, 2, 3, 4]
    assert all(i["status_code"] is None and "ConnectError" in i["error"] for i in items)
    event = await _event(ctx, event_id)
    assert (event["status"], event["attempts"]) == ("failed", 4)


async def test_a_hanging_receiver_times_out_and_the_attempt_returns(ctx, clean, http, webhook_receiver):
    receiver = webhook_receiver([Reply(hang=HANG)])
    event_id, job_id, user_id = await _queue(ctx, receiver.url)
    quick = _with(ctx, webhook_timeout=1.0)
    assert await deliver(quick, http, event_id) == "retrying"
    [item] = await list_attempts(ctx, job_id, user_id)
    assert item["status_code"] is None
    assert item["error"] == "timed out after 1 s"
    # The attempt lasted its limit, and ended there rather than when the receiver would have answered
    assert 1000 <= item["duration_ms"] < HANG * 1000


async def test_a_receiver_trickling_its_answer_cannot_hold_the_attempt(ctx, clean, http, webhook_receiver):
    # Each header line arrives well within httpx's per-read timeout; only the total limit stops it
    receiver = webhook_receiver([Reply(trickle=0.2)])
    event_id, job_id, user_id = await _queue(ctx, receiver.url)
    quick = _with(ctx, webhook_timeout=1.0)
    client = make_http_client(quick.settings)
    try:
        # Without the total limit this attempt would never end: a deadline keeps a regression from hanging
        async with asyncio.timeout(HANG):
            assert await deliver(quick, client, event_id) == "retrying"
    finally:
        await client.aclose()
    [item] = await list_attempts(ctx, job_id, user_id)
    assert item["error"] == "timed out after 1 s"
    assert item["duration_ms"] >= 1000


async def test_redirects_are_not_followed(ctx, clean, http, webhook_receiver):
    elsewhere = webhook_receiver()
    receiver = webhook_receiver([Reply(302, {"Location": elsewhere.url})])
    event_id, job_id, user_id = await _queue(ctx, receiver.url)
    assert await deliver(ctx, http, event_id) == "failed"
    assert len(receiver.received()) == 1
    assert elsewhere.received() == []
    [item] = await list_attempts(ctx, job_id, user_id)
    assert item["status_code"] == 302
    assert "redirects are not followed" in item["error"]


async def test_a_private_address_is_refused_at_delivery_time_and_that_is_final(ctx, clean, webhook_receiver):
    receiver = webhook_receiver()
    event_id, job_id, user_id = await _queue(ctx, receiver.url)
    strict = _with(ctx, webhook_allow_private=False)
    client = make_http_client(strict.settings)
    try:
        assert await deliver(strict, client, event_id) == "failed"
    finally:
        await client.aclose()
    assert receiver.received() == []
    [item] = await list_attempts(ctx, job_id, user_id)
    assert item["status_code"] is None
    assert "127.0.0.1" in item["error"] and "public" in item["error"]
    assert (await _event(ctx, event_id))["status"] == "failed"


async def test_the_client_checks_the_address_it_connects_to(ctx, clean, webhook_receiver, settings):
    # A name that resolved to a public address when checked and to a private one when connecting (DNS
    # rebinding) is refused by the client itself: here the check is skipped (allowed) and the client is not
    receiver = webhook_receiver()
    event_id, job_id, user_id = await _queue(ctx, receiver.url)
    strict_client = make_http_client(dataclasses.replace(settings, webhook_allow_private=False))
    try:
        with pytest.raises(ForbiddenAddress):
            await strict_client.post(receiver.url.replace("127.0.0.1", "localhost"), content=b"{}")
        assert await deliver(ctx, strict_client, event_id) == "failed"
    finally:
        await strict_client.aclose()
    assert receiver.received() == []
    [item] = await list_attempts(ctx, job_id, user_id)
    assert "refused to connect" in item["error"]


async def test_duplicate_messages_deliver_once(ctx, clean, http, webhook_receiver):
    receiver = webhook_receiver([Reply(200, hang=0.3)])
    event_id, _, _ = await _queue(ctx, receiver.url)
    outcomes = await asyncio.gather(*(deliver(ctx, http, event_id) for _ in range(4)))
    assert sorted(outcomes) == ["delivered", "not-due", "not-due", "not-due"]
    assert await deliver(ctx, http, event_id) == "not-due"
    # The receiver records a request before it answers, so every attempt made by now is in it.
    assert len(receiver.received()) == 1


async def test_attempts_are_listed_only_to_their_owner(ctx, clean, http, webhook_receiver):
    receiver = webhook_receiver([200])
    event_id, job_id, user_id = await _queue(ctx, receiver.url)
    assert await list_attempts(ctx, job_id, user_id) == []  # queued, not attempted yet
    assert await deliver(ctx, http, event_id) == "delivered"
    assert len(await list_attempts(ctx, job_id, user_id)) == 1
    assert await list_attempts(ctx, job_id, await _account(ctx)) == []
    assert await list_attempts(ctx, uuid.uuid4(), user_id) == []


async def test_deleting_the_account_deletes_its_events_and_attempts(ctx, clean, http, webhook_receiver):
    receiver = webhook_receiver([200])
    event_id, _, user_id = await _queue(ctx, receiver.url)
    assert await deliver(ctx, http, event_id) == "delivered"
    await db_execute(ctx, "DELETE FROM accounts WHERE id = $1", user_id)
    assert await db_value(ctx, "SELECT count(*) FROM webhook_events") == 0
    assert await db_value(ctx, "SELECT count(*) FROM webhook_attempts") == 0


# --- The relay -----------------------------------------------------------------------------------------


async def test_relay_re_drives_an_event_whose_message_was_lost(ctx, clean):
    from service.relay import sweep

    broker = worker_broker()

    event_id, _, _ = await _queue(ctx, "https://8.8.8.8/h")
    broker.flush_all()
    # Not overdue: the dispatch after commit is trusted for RELAY_GRACE seconds
    assert await sweep(ctx, broker) == 0
    await db_execute(ctx, "UPDATE webhook_events SET next_attempt_at = now() - interval '1 second'")
    assert await sweep(ctx, broker) == 1
    assert await sweep(ctx, broker) == 0  # not again until the grace period passes
    assert broker.do_qsize("webhooks") == 1
    event = await _event(ctx, event_id)
    assert event["status"] == "pending" and event["due_in"] <= 0


async def test_relay_records_an_attempt_cut_short_by_a_dead_worker(ctx, clean):
    from service.relay import sweep

    broker = worker_broker()

    event_id, job_id, user_id = await _queue(ctx, "https://8.8.8.8/h")
    broker.flush_all()
    # A worker claimed attempt 2 and died: its claim lapses
    await db_execute(
        ctx,
        "UPDATE webhook_events SET status = 'delivering', attempts = 2, next_attempt_at = now() - interval '1 s'",
    )
    assert await sweep(ctx, broker) == 1
    assert (await _event(ctx, event_id))["status"] == "pending"
    [lost] = await list_attempts(ctx, job_id, user_id)
    assert (lost["attempt"], lost["status_code"], lost["error"], lost["duration_ms"]) == (2, None, LOST_ATTEMPT, None)
    # The same at the last attempt: the event fails instead of being re-driven
    await db_execute(
        ctx,
        "UPDATE webhook_events SET status = 'delivering', attempts = $1, next_attempt_at = now() - interval '1 s'",
        MAX_ATTEMPTS,
    )
    assert await sweep(ctx, broker) == 0
    event = await _event(ctx, event_id)
    assert (event["status"], event["last_error"]) == ("failed", LOST_ATTEMPT)
    assert [a["outcome"] for a in await _attempts(ctx, event_id)] == ["retrying", "failed"]


async def test_an_attempt_finishing_after_its_claim_lapsed_is_still_recorded(ctx, clean, http, webhook_receiver):
    from service.relay import sweep

    broker = worker_broker()

    receiver = webhook_receiver([Reply(200, hang=1.0)])
    event_id, job_id, user_id = await _queue(ctx, receiver.url)
    broker.flush_all()
    attempt = asyncio.create_task(deliver(ctx, http, event_id))
    await receiver.wait_for(1)
    # The relay believes the worker dead (its claim lapsed) while the request is still in flight
    await db_execute(ctx, "UPDATE webhook_events SET next_attempt_at = now() - interval '1 s'")
    assert await sweep(ctx, broker) == 1
    assert await attempt == "delivered"
    # The real outcome replaces the relay's placeholder, and the re-driven message finds nothing to do
    [item] = await list_attempts(ctx, job_id, user_id)
    assert (item["attempt"], item["status_code"], item["error"]) == (1, 200, None)
    assert (await _event(ctx, event_id))["status"] == "delivered"
    assert await deliver(ctx, http, event_id) == "not-due"
    assert len(receiver.received()) == 1


# --- End to end through a real Dramatiq worker -------------------------------------------------------------


async def _is_delivered(ctx: Context, event_id: uuid.UUID) -> bool:
    return await db_value(ctx, "SELECT status = 'delivered' FROM webhook_events WHERE id = $1", event_id)


async def _settled(ctx: Context, broker: Any, status: str) -> None:
    """Wait until the event is in its final `status` (a delivered or failed event is never claimed again)
    and the webhooks queue is drained (no message is left, waiting or in a worker's hands, that could
    still make an attempt): from then on, nothing more can arrive at the receiver."""
    await eventually(lambda: db_value(ctx, "SELECT status = $1 FROM webhook_events", status), what=status)
    await eventually(lambda: queue_size(broker, "webhooks.deliver") == 0, what="the webhooks queue drained")


async def test_worker_delivers_after_two_500s_with_backoff_and_valid_signatures(ctx, clean, webhook_receiver):
    receiver = webhook_receiver([500, 500, 200])
    with running_worker() as broker:
        event_id, job_id, user_id = await _queue(ctx, receiver.url)
        ctx.dispatcher.dispatch_soon(Message("webhooks.deliver", (str(event_id),)))
        requests = await receiver.wait_for(3)
        await _settled(ctx, broker, "delivered")
    assert len(receiver.received()) == 3
    assert {r.headers["webhook-id"] for r in requests} == {str(event_id)}
    assert all(r.verify(ctx.settings.webhook_secret)["data"]["job_id"] == str(job_id) for r in requests)
    # Exponential backoff from WEBHOOK_RETRY_BASE=0.2 s, +/-20%
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert gaps[0] >= 0.2 * 0.8 and gaps[1] >= 0.4 * 0.8
    assert [(i["attempt"], i["status_code"]) for i in await list_attempts(ctx, job_id, user_id)] == [
        (1, 500),
        (2, 500),
        (3, 200),
    ]


async def test_worker_gives_up_on_a_receiver_that_keeps_failing(ctx, clean, webhook_receiver):
    receiver = webhook_receiver(then=503)
    with running_worker() as broker:
        event_id, job_id, user_id = await _queue(ctx, receiver.url)
        ctx.dispatcher.dispatch_soon(Message("webhooks.deliver", (str(event_id),)))
        await _settled(ctx, broker, "failed")
    assert len(receiver.received()) == MAX_ATTEMPTS
    assert [i["status_code"] for i in await list_attempts(ctx, job_id, user_id)] == [503] * MAX_ATTEMPTS


async def test_worker_relay_delivers_an_event_whose_message_was_lost(ctx, clean, webhook_receiver):
    receiver = webhook_receiver([200])
    await _queue(ctx, receiver.url)  # never dispatched: the message is lost
    await db_execute(ctx, "UPDATE webhook_events SET next_attempt_at = now() - interval '1 second'")
    with running_worker() as broker:
        await _settled(ctx, broker, "delivered")
    assert len(receiver.received()) == 1
    assert await db_value(ctx, "SELECT attempts FROM webhook_events") == 1
    assert receiver.received()[0].verify(ctx.settings.webhook_secret)["type"] == "import.completed"


async def test_a_stopping_worker_lets_the_relay_sweep_in_progress_finish(ctx, clean, monkeypatch):
    # Cancelling a sweep could land in its COMMIT and leave a pooled connection checked out for good, so
    # that the worker's stop then waited forever on the pool: the sweep is let finish instead.
    from service import relay
    from workers.middleware import relay as relay_middleware

    entered, finished = threading.Event(), threading.Event()

    async def slow_redrive(_ctx: Context) -> list[Message]:
        entered.set()
        # Inside the sweep's transaction until the worker is told to stop: the sweep is in progress then.
        (middleware,) = [m for m in worker_broker().middleware if isinstance(m, relay_middleware.Relay)]
        assert await asyncio.to_thread(middleware._stop.wait, 30), "the worker was never told to stop"
        finished.set()
        return []

    monkeypatch.setattr(relay, "REDRIVERS", [slow_redrive])
    with log_records("tasklane.worker") as records, running_worker():
        assert await asyncio.to_thread(entered.wait, 10)
    assert finished.is_set()  # the stop waited for the sweep to end...
    assert not [r for r in records if "cancelled" in r.getMessage()]  # ...which was not cut short
    assert await db_value(ctx, "SELECT 1") == 1  # the test's own pool is unaffected


async def test_a_hanging_receiver_does_not_hold_the_worker_thread(ctx, clean, webhook_receiver, monkeypatch):
    hanging = webhook_receiver([Reply(hang=HANG)], then=200)
    healthy = webhook_receiver([200])
    # One thread for notifications: the lanes middleware reads WORKER_NOTIFICATION_THREADS when the worker boots
    monkeypatch.setenv("WORKER_NOTIFICATION_THREADS", "1")
    get_settings.cache_clear()
    try:
        with running_worker(threads=1):
            from workers.middleware.resources import resources

            resources.ctx = _with(resources.ctx, webhook_timeout=1.0)
            slow_id, slow_job, user_id = await _queue(ctx, hanging.url)
            fast_id, fast_job, _ = await _queue(ctx, healthy.url, user_id=user_id)
            ctx.dispatcher.dispatch_soon(Message("webhooks.deliver", (str(slow_id),)))
            await hanging.wait_for(1)
            ctx.dispatcher.dispatch_soon(Message("webhooks.deliver", (str(fast_id),)))
            # The only notification thread is freed by the 1 s limit: the next event goes out long before
            # the hanging receiver would have answered
            await healthy.wait_for(1, timeout=HANG / 2)
            # And the hanging event is retried, and delivered when the receiver answers
            await eventually(lambda: _is_delivered(ctx, slow_id), timeout=10)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    first, second = await list_attempts(ctx, slow_job, user_id)
    assert (first["status_code"], first["error"]) == (None, "timed out after 1 s")
    assert 1000 <= first["duration_ms"] < HANG * 1000
    assert (second["status_code"], second["error"]) == (200, None)
    # The healthy event's attempt began once the hanging one was cut: the thread was taken, then freed
    [fast] = await list_attempts(ctx, fast_job, user_id)
    assert fast["created_at"] >= first["created_at"] + timedelta(milliseconds=first["duration_ms"])

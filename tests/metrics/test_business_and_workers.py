"""Business counters from the service code, and the workers' figures read from Dramatiq's Redis keys
and PostgreSQL."""

from __future__ import annotations

import time
import uuid

import dramatiq

from service import metrics
from service.messages import Message, send
from tests.metrics.conftest import read
from tests.support import (
    PASSWORD,
    active_account,
    assert_problem,
    db_execute,
    db_value,
    login,
    register,
    wait_until,
    worker_broker,
)


async def test_registration_activation_failed_login_and_emails_are_counted(metrics_client, ctx, smtp):
    await active_account(metrics_client, ctx, smtp, "nora@example.com")  # activation + welcome emails
    assert_problem(await login(metrics_client, "nora@example.com", "wrong-password"), 401)
    assert_problem(await login(metrics_client, "nobody@example.com", PASSWORD), 401)
    assert (await login(metrics_client, "nora@example.com")).status_code == 200
    counters = (await read(metrics_client))["counters"]
    assert counters["registrations"] == 1
    assert counters["activations"] == 1
    assert counters["logins_failed"] == 2
    assert counters["emails_sent"] == 2
    assert counters["emails_failed"] == 0
    # Refused requests count nothing: a duplicate registration is a 409, not a registration.
    assert (await register(metrics_client, "nora@example.com")).status_code == 409
    assert (await read(metrics_client))["counters"]["registrations"] == 1


def _broker():
    broker = worker_broker()
    broker.flush_all()
    return broker


async def test_queue_depth_delay_and_oldest_message_age(metrics_client):
    broker = _broker()
    old = dramatiq.Message(
        queue_name="emails",
        actor_name="emails.send",
        args=(str(uuid.uuid4()),),
        kwargs={},
        options={},
        message_timestamp=int((time.time() - 30) * 1000),
    )
    broker.enqueue(old)
    for _ in range(2):
        send(broker, Message("emails.send", (str(uuid.uuid4()),)))
    send(broker, Message("emails.send", (str(uuid.uuid4()),), delay_ms=600_000))
    send(broker, Message("imports.process", (str(uuid.uuid4()),)))
    queues = (await read(metrics_client))["workers"]["queues"]
    assert queues["emails"]["ready"] == 3
    assert queues["emails"]["delayed"] == 1
    assert queues["emails"]["in_flight"] == 0
    assert 29 <= queues["emails"]["oldest_age_seconds"] < 40
    assert queues["imports"]["ready"] == 1 and queues["imports"]["oldest_age_seconds"] < 10
    assert queues["webhooks"]["ready"] == 0 and queues["webhooks"]["oldest_age_seconds"] is None
    text = (await metrics_client.get("/metrics")).text
    assert 'tasklane_queue_depth{queue="emails"} 3' in text
    assert 'tasklane_queue_delayed{queue="emails"} 1' in text


async def test_dead_lettered_and_fetched_messages_are_reported(metrics_client):
    broker = _broker()
    for _ in range(3):
        send(broker, Message("emails.send", (str(uuid.uuid4()),)))
    consumer = broker.consume("emails", prefetch=1, timeout=1000)
    try:
        # What a worker does with a message that failed for good: nack moves it to the dead letters.
        message = None
        while message is None:
            message = next(consumer)
        consumer.nack(message)
        fetched = None
        while fetched is None:
            fetched = next(consumer)  # fetched, not acknowledged yet: in flight
        queues = (await read(metrics_client))["workers"]["queues"]
        assert queues["emails"]["dead_letter"] == 1
        assert queues["emails"]["in_flight"] == 1
        assert queues["emails"]["ready"] == 1
        text = (await metrics_client.get("/metrics")).text
        assert 'tasklane_queue_dead_letter{queue="emails"} 1' in text
        consumer.ack(fetched)
    finally:
        consumer.close()


async def test_jobs_processing_counts_import_jobs_and_is_zero_without_the_table(metrics_client, ctx):
    exists = await db_value(ctx, "SELECT to_regclass('import_jobs') IS NOT NULL")
    if not exists:
        assert (await read(metrics_client))["workers"]["jobs_processing"] == 0
        await db_execute(ctx, "CREATE TABLE import_jobs (id serial PRIMARY KEY, status text NOT NULL)")
    try:
        await db_execute(ctx, "DELETE FROM import_jobs")
        if exists:
            return  # the real table: its rows need accounts and files; the query is the same
        await db_execute(
            ctx, "INSERT INTO import_jobs (status) VALUES ('processing'), ('processing'), ('queued'), ('failed')"
        )
        assert (await read(metrics_client))["workers"]["jobs_processing"] == 2
        assert "tasklane_jobs_processing 2" in (await metrics_client.get("/metrics")).text
    finally:
        if not exists:
            await db_execute(ctx, "DROP TABLE import_jobs")


def test_the_worker_middleware_flushes_counts_on_the_worker_loop(worker, redis_client):
    """A sync test: this thread blocks, so only the worker's own flusher (on its event loop) can take
    the count to Redis."""
    metrics.count("tasks_created", 3)
    flushed = wait_until(lambda: redis_client.hget("tasklane:metrics:counters", "tasks_created"), "the flush", 10)
    assert flushed == b"3"
    assert redis_client.keys("tasklane:metrics:applied:worker:*")

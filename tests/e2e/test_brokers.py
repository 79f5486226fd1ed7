"""The same end-to-end flows with Dramatiq on Redis (the default) and on RabbitMQ (BROKER_URL=amqp://...):
register -> email, an import whose worker is SIGKILLed mid-file (exactly-once counts), its completion
webhook retried after two 500s, queue figures in /api/v1/metrics, and the relay re-driving an email whose
broker message was lost. Rate limits and metrics stay in Redis either way.

RabbitMQ is one server shared by whoever runs tests on this machine: this run's queues carry a prefix of
their own (BROKER_QUEUE_PREFIX) and are deleted afterwards."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import closing
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pika
import pytest
import redis

from tests.support import PASSWORD, eventually, signup, upload, wait_job

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
QUEUES = ("emails", "imports", "webhooks")
ROWS, CHUNK = 60_000, 1_000


def queue_names(prefix: str) -> list[str]:
    return [f"{prefix}{queue}{suffix}" for queue in QUEUES for suffix in ("", ".DQ", ".XQ")]


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest, settings: Any) -> Iterator[dict[str, Any]]:
    """Environment for the processes, and how to lose the messages waiting in a queue."""
    if request.param == "redis":
        client = redis.Redis.from_url(settings.redis_url)

        def purge(queue: str) -> None:
            client.delete(f"dramatiq:{queue}", f"dramatiq:{queue}.msgs")

        yield {"name": "redis", "env": {}, "purge": purge}
        client.close()
        return
    prefix = f"{urlsplit(settings.database_url).path.strip('/')}.{os.getpid()}."
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))

    def purge_rabbitmq(queue: str) -> None:
        connection.channel().queue_purge(prefix + queue)

    try:
        yield {
            "name": "rabbitmq",
            "env": {"BROKER_URL": RABBITMQ_URL, "BROKER_QUEUE_PREFIX": prefix},
            "purge": purge_rabbitmq,
        }
    finally:
        with closing(connection):
            for name in queue_names(prefix):
                connection.channel().queue_delete(name)


def csv() -> bytes:
    rows = "".join(f"Broker {i},{9 if i % 1000 == 0 else i % 5 + 1}\n" for i in range(ROWS))
    return f"title,priority\n{rows}".encode()


async def test_flows_on_each_broker(stack, smtp, database, webhook_receiver, broker):
    env = {**broker["env"], "IMPORT_CHUNK_ROWS": str(CHUNK), "TRUSTED_PROXIES": "127.0.0.1"}
    _web, url = stack.web(extra_env=env)
    worker = stack.worker(processes=1, threads=2, extra_env=env)
    receiver = webhook_receiver([500, 500])
    conn = await asyncpg.connect(database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            # Register -> activation email (web enqueues, worker sends).
            headers = await signup(http, smtp, f"{broker['name']}@example.com")

            # An import, its worker SIGKILLed once 5 chunks have committed, finished by a new worker.
            response = await upload(http, headers, csv(), "broker.csv", webhook_url=receiver.url)
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]

            async def five_chunks() -> bool:
                return await conn.fetchval("SELECT count(*) FROM import_chunks WHERE job_id = $1", job_id) >= 5

            await eventually(five_chunks, 60, "5 chunks", every=0.01)
            worker.kill()
            worker = stack.worker(processes=1, threads=2, extra_env=env)
            job = await wait_job(http, headers, job_id, timeout=120)
            # The completion webhook: 500, 500, then delivered on the third attempt.
            await receiver.wait_for(3, timeout=30)

            async def delivered() -> list[dict[str, Any]] | None:
                items = (await http.get(f"/api/v1/imports/{job_id}/deliveries", headers=headers)).json()["items"]
                return items if len(items) == 3 else None

            attempts = await eventually(delivered, 15, "3 recorded delivery attempts")

            # The relay: with no worker, an email waits in the queue; the message is lost; a worker started
            # later still sends it, re-driven from PostgreSQL.
            code, _took = await asyncio.to_thread(worker.stop_group)
            assert code == 0
            answer = await http.post("/api/v1/users", json={"email": "relay@example.com", "password": PASSWORD})
            assert answer.status_code == 201

            async def waiting() -> dict[str, Any] | None:
                queues = (await http.get("/api/v1/metrics")).json()["workers"]["queues"]
                return queues if queues["emails"]["ready"] == 1 else None

            queues = await eventually(waiting, 10, "the email message to wait in the broker")
            broker["purge"]("emails")
            stack.worker(processes=1, threads=2, extra_env=env)
            await smtp.wait_for("relay@example.com", timeout=20)
        tasks = await conn.fetchval("SELECT count(*) FROM tasks WHERE import_id = $1", job_id)
        titles = await conn.fetchval("SELECT count(DISTINCT title) FROM tasks WHERE import_id = $1", job_id)
    finally:
        await conn.close()
    bad = ROWS // 1000
    assert job["status"] == "completed"
    assert (job["rows_imported"], job["rows_failed"]) == (ROWS - bad, bad)
    assert tasks == titles == ROWS - bad, "a row was lost or imported twice"
    assert len({r.headers["webhook-id"] for r in receiver.received()}) == 1
    assert [a["status_code"] for a in attempts] == [500, 500, 200]
    assert set(queues) == set(QUEUES)
    in_flight = queues["emails"]["in_flight"]
    assert in_flight is None if broker["name"] == "rabbitmq" else in_flight == 0

"""Multi-process truth: with 2 uvicorn workers and 2 Dramatiq worker processes, every request and every
business event is counted exactly once in /api/v1/metrics."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest
import redis

from tests.metrics.conftest import reset_metrics
from tests.support import PASSWORD, eventually

FLUSH = {"METRICS_FLUSH_INTERVAL": "0.2"}
REQUESTS = 300
ACCOUNTS = 3


async def _until(http: httpx.AsyncClient, done, timeout: float = 20) -> dict:
    """The metrics once `done(metrics)` holds."""

    async def read() -> dict | None:
        data = (await http.get("/api/v1/metrics")).json()
        return data if done(data) else None

    return await eventually(read, timeout, "the metrics to count it", every=0.2)


def _me(data: dict) -> int:
    return data["routes"].get("GET /api/v1/users/me", {}).get("count", 0)


@pytest.mark.slow
async def test_every_request_is_counted_once_across_processes(stack, smtp, redis_client: redis.Redis, app_client):
    # This test process's own app must not flush leftovers of earlier tests into the figures.
    await reset_metrics(app_client)
    web, url = stack.web(workers=2, extra_env=FLUSH)
    stack.worker(processes=2, threads=2, extra_env=FLUSH)
    # No keep-alive: every request opens a connection, so both uvicorn processes take a share.
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as http:
        sem = asyncio.Semaphore(16)

        async def one() -> int:
            async with sem:
                return (await http.get("/api/v1/users/me")).status_code

        statuses = await asyncio.gather(*(one() for _ in range(REQUESTS)))
        assert statuses == [401] * REQUESTS
        for n in range(ACCOUNTS):
            response = await http.post("/api/v1/users", json={"email": f"p{n}@example.com", "password": PASSWORD})
            assert response.status_code == 201
        for n in range(ACCOUNTS):
            await smtp.wait_for(f"p{n}@example.com", timeout=20)  # sent by the worker processes

        await _until(http, lambda d: _me(d) >= REQUESTS and d["counters"]["emails_sent"] >= ACCOUNTS)
        # Later flushes add nothing twice: once a later registration and its email are counted (flushed by a
        # web and a worker process after the figures above were complete), those are still exactly once each.
        response = await http.post("/api/v1/users", json={"email": "later@example.com", "password": PASSWORD})
        assert response.status_code == 201
        await smtp.wait_for("later@example.com", timeout=20)
        data = await _until(http, lambda d: d["counters"]["emails_sent"] >= ACCOUNTS + 1)
        me = data["routes"]["GET /api/v1/users/me"]
        assert me["count"] == REQUESTS
        assert me["by_status_class"] == {"2xx": 0, "3xx": 0, "4xx": REQUESTS, "5xx": 0}
        assert me["window"]["count"] == REQUESTS
        assert data["routes"]["POST /api/v1/users"]["count"] == ACCOUNTS + 1
        assert data["counters"]["registrations"] == ACCOUNTS + 1
        assert data["counters"]["emails_sent"] == ACCOUNTS + 1
        assert data["workers"]["queues"]["emails"]["ready"] == 0

    # Both web processes and at least one worker process flushed (the key names their role).
    here = f":{os.getpid()}:".encode()
    web_ids = [key for key in redis_client.keys("tasklane:metrics:applied:web:*") if here not in key]
    worker_ids = redis_client.keys("tasklane:metrics:applied:worker:*")
    assert len(web_ids) == 2, web_ids
    assert len(worker_ids) >= 1, worker_ids

    # A graceful stop flushes what is left and adds nothing twice.
    web.stop()
    _, url2 = stack.web(workers=1, extra_env=FLUSH)
    async with httpx.AsyncClient(base_url=url2, timeout=10) as http:
        data = (await http.get("/api/v1/metrics")).json()
        assert data["routes"]["GET /api/v1/users/me"]["count"] == REQUESTS
        # The readiness probes the test harness sent count under their own route.
        assert data["routes"]["GET /health/ready"]["count"] >= 2

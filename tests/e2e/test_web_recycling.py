"""WEB_MAX_REQUESTS: each web process is replaced after that many requests (plus its own jitter), and no
request is lost or refused meanwhile: the supervisor keeps the listening socket open, and the other
process serves while a new one starts."""

from __future__ import annotations

import asyncio
import re

import asyncpg
import httpx

from tests.support import signup

LIMIT, JITTER = 40, 20
CLIENTS, REQUESTS = 8, 60  # 480 requests: about 8 recycles over 2 processes


async def test_processes_are_recycled_without_losing_a_request(stack, smtp, database):
    web, url = stack.web(workers=2, extra_env={"WEB_MAX_REQUESTS": str(LIMIT), "WEB_MAX_REQUESTS_JITTER": str(JITTER)})
    stack.worker(processes=1, threads=1)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        headers = await signup(http, smtp, "recycle@example.com")

    async def client(n: int) -> list[int | str]:
        # Half the clients keep their connections alive, half open one per request.
        limits = httpx.Limits(max_keepalive_connections=1 if n % 2 else 0)
        outcomes: list[int | str] = []
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            for i in range(REQUESTS):
                try:
                    if i % 3 == 0:
                        response = await http.post("/api/v1/tasks", json={"title": f"r{n}-{i}"}, headers=headers)
                    else:
                        response = await http.get("/api/v1/tasks?limit=5", headers=headers)
                    outcomes.append(response.status_code)
                except httpx.HTTPError as exc:
                    outcomes.append(type(exc).__name__)
        return outcomes

    per_client = await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    results = [o for outcomes in per_client for o in outcomes]
    conn = await asyncpg.connect(database)
    try:
        created = await conn.fetchval("SELECT count(*) FROM tasks")
    finally:
        await conn.close()
    limits = [int(m) for m in re.findall(r"Maximum request limit of (\d+) exceeded", web.text())]
    failures = [o for o in results if o not in (200, 201)]
    assert failures == [], failures
    assert created == CLIENTS * len(range(0, REQUESTS, 3))
    assert len(limits) >= 4, "processes were recycled"
    assert all(LIMIT <= n <= LIMIT + JITTER for n in limits) and len(set(limits)) > 1, limits

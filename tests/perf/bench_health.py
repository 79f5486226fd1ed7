"""p99 of GET /health/live while 16 concurrent registrations hash passwords at bcrypt cost 12, against
the same p99 with no registrations running. Goal: the loaded p99 stays under 25 ms.

Run: python -m tests.perf.bench_health
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from typing import Any

import httpx

from tests.perf.common import Figure, bench_env, closed_loop, fresh_database, print_table, server, uvicorn

PROBE_SECONDS = 8.0
REGISTRATIONS = 16


def _register_forever(url: str, stop_at: float, counter: Any) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:

            async def one(n: int) -> None:
                while time.time() < stop_at:
                    # Distinct client addresses through the trusted-proxy header, so the per-IP limit of
                    # 5 registrations an hour does not cut the load short.
                    address = f"10.{n}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
                    response = await http.post(
                        "/api/v1/users",
                        json={"email": f"{uuid.uuid4().hex}@bench.example", "password": "secret123"},
                        headers={"X-Forwarded-For": address},
                    )
                    if response.status_code == 201:
                        with counter.get_lock():
                            counter.value += 1

            await asyncio.gather(*(one(n) for n in range(REGISTRATIONS)))

    asyncio.run(run())


async def measure() -> list[Figure]:
    url_db = await fresh_database("tasklane_bench_health")
    env = bench_env(url_db, 12, BCRYPT_ROUNDS="12", TRUSTED_PROXIES="127.0.0.1", RELAY_GRACE="3600")
    with server(uvicorn("service.app:create_app", "--factory"), env) as url:
        await closed_loop(url, "GET", "/health/live", 2, 1.0)  # warm-up
        idle = await closed_loop(url, "GET", "/health/live", 2, PROBE_SECONDS)
        counter = multiprocessing.Value("i", 0)
        stop_at = time.time() + PROBE_SECONDS + 2
        loader = multiprocessing.Process(target=_register_forever, args=(url, stop_at, counter))
        loader.start()
        await asyncio.sleep(1.5)  # let the hashing pool fill up
        loaded = await closed_loop(url, "GET", "/health/live", 2, PROBE_SECONDS)
        loader.join()
    rate = counter.value / (PROBE_SECONDS + 2)
    print(f"registrations during the loaded run: {counter.value} ({rate:.1f}/s at cost 12)")
    print(f"probes: {idle.requests} idle, {loaded.requests} loaded")
    return [
        Figure("health p99 under 16 concurrent registrations", loaded.p(99), idle.p(99), "< 25 ms", "ms"),
        Figure("health p50 under 16 concurrent registrations", loaded.p50, idle.p50, "-", "ms"),
        Figure("registrations completed per second (bcrypt cost 12)", counter.value / (PROBE_SECONDS + 2), None, "-"),
    ]


def main() -> list[dict[str, Any]]:
    figures = asyncio.run(measure())
    print_table("Health latency under registration load (baseline: same probe, no registrations)", figures)
    return [f.row() for f in figures]


if __name__ == "__main__":
    main()

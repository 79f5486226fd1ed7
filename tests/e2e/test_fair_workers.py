"""Imports spread over worker processes: N processes x M threads run N x M imports at once, nothing parks in
one process's prefetch while another idles, and emails never wait behind imports."""

from __future__ import annotations

from collections import Counter

import asyncpg
import httpx
import redis

from tests.support import PASSWORD, eventually, signup, upload

ENV = {"IMPORT_CHUNK_ROWS": "1000", "LOG_LEVEL": "INFO"}
UPLOADS, ROWS = 6, 30_000


def csv(n: int) -> bytes:
    return ("title\n" + "".join(f"Fair {n}-{i}\n" for i in range(ROWS))).encode()


async def test_two_processes_of_two_threads_run_four_imports_and_still_send_emails(stack, smtp, database, settings):
    _web, url = stack.web(extra_env=ENV)
    worker = stack.worker(processes=2, threads=2, extra_env=ENV)
    broker = redis.Redis.from_url(settings.redis_url)
    conn = await asyncpg.connect(database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            headers = await signup(http, smtp, "fair@example.com")
            for n in range(UPLOADS):
                assert (await upload(http, headers, csv(n), f"fair{n}.csv")).status_code == 202

            async def four_running() -> bool:
                return await conn.fetchval("SELECT count(*) FROM import_jobs WHERE status = 'processing'") == 4

            await eventually(four_running, 30, "4 imports processing at once")
            # The other two wait in the broker for any process, not in one process's prefetch.
            waiting = broker.llen("dramatiq:imports")

            async def four_started() -> Counter[int] | None:
                # A job's row says 'processing' a moment before its worker logs "import started".
                started = [line["pid"] for line in worker.logs() if line.get("message") == "import started"]
                return Counter(started) if len(started) >= 4 else None

            by_process = await eventually(four_started, 10, "4 'import started' lines")

            # An email while every import thread is busy: it has threads of its own.
            response = await http.post("/api/v1/users", json={"email": "late@example.com", "password": PASSWORD})
            assert response.status_code == 201, response.text
            await smtp.wait_for("late@example.com", timeout=10)
            running = await conn.fetchval("SELECT count(*) FROM import_jobs WHERE status = 'processing'")

            async def all_done() -> bool:
                return await conn.fetchval("SELECT count(*) FROM import_jobs WHERE status = 'completed'") == UPLOADS

            await eventually(all_done, 180, "every import to complete", every=0.2)
    finally:
        await conn.close()
    assert waiting == 2
    assert sorted(by_process.values()) == [2, 2], by_process
    assert running == 4, "the email was sent while the four imports ran"

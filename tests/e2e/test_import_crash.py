"""A worker SIGKILLed in the middle of a 200,000-row import: restarted, the job completes with exactly
the right tasks, each bad row reported once."""

from __future__ import annotations

import asyncpg
import httpx

from tests.support import eventually, signup, wait_job

ROWS = 200_000
BAD_EVERY = 1_000  # every 1000th row has an impossible priority
CRASH_ENV = {
    "IMPORT_CHUNK_ROWS": "2000",
    "BROKER_HEARTBEAT_TIMEOUT_MS": "2000",
    "IMPORT_STALE_AFTER": "3",
    "RELAY_GRACE": "1",
    "RELAY_INTERVAL": "0.5",
}


def big_csv() -> bytes:
    lines = ["title,priority,category"]
    lines += [f"Task {i},{9 if i % BAD_EVERY == 0 else i % 5 + 1},Cat {i % 7}" for i in range(ROWS)]
    return ("\n".join(lines) + "\n").encode()


async def test_a_killed_worker_loses_and_duplicates_nothing(stack, smtp, database):
    _web, url = stack.web(extra_env=CRASH_ENV)
    first = stack.worker(processes=1, threads=2, extra_env=CRASH_ENV)
    conn = await asyncpg.connect(database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            headers = await signup(http, smtp, "kill@example.com")
            response = await http.post(
                "/api/v1/imports", files={"file": ("big.csv", big_csv(), "text/csv")}, headers=headers
            )
            assert response.status_code == 202
            job_id = response.json()["id"]

            # Kill the worker, with no warning, once a few chunks have committed
            five = "SELECT count(*) >= 5 FROM import_chunks"
            await eventually(lambda: conn.fetchval(five), 60, "5 chunks to commit", every=0.01)
            first.kill()
            at_kill = await conn.fetchrow(
                "SELECT status, (SELECT count(*) FROM tasks) AS tasks FROM import_jobs WHERE id = $1", job_id
            )
            assert at_kill["status"] == "processing", "the import finished before the kill; nothing was tested"
            assert 0 < at_kill["tasks"] < ROWS - ROWS // BAD_EVERY

            # A new worker takes over once the dead one's heartbeat is stale
            stack.worker(processes=1, threads=2, extra_env=CRASH_ENV)
            job = await wait_job(http, headers, job_id, timeout=90)

        bad = ROWS // BAD_EVERY
        assert job["status"] == "completed", job
        assert (job["rows_processed"], job["rows_imported"], job["rows_failed"]) == (ROWS, ROWS - bad, bad)
        assert await conn.fetchval("SELECT count(*) FROM tasks WHERE import_id = $1", job_id) == ROWS - bad
        assert await conn.fetchval("SELECT count(DISTINCT title) FROM tasks") == ROWS - bad
        assert await conn.fetchval("SELECT count(*) FROM import_errors WHERE job_id = $1", job_id) == bad
        assert await conn.fetchval("SELECT count(*) FROM categories") == 7
        assert await conn.fetchval("SELECT attempts FROM import_jobs WHERE id = $1", job_id) >= 2
    finally:
        await conn.close()

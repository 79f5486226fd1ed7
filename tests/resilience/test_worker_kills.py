"""Scenario 1: a worker SIGKILLed three times at random points of a 300,000-row CSV import, restarted each
time. The job completes with exactly 300,000 rows accounted for: every valid row is one task, every bad
row is one failed row (its field errors recorded once), nothing is imported twice."""

from __future__ import annotations

import asyncio
import random
import time

import asyncpg
import httpx
import pytest

from tests.support import PASSWORD, eventually, signup, upload, wait_job

pytestmark = [pytest.mark.resilience, pytest.mark.slow]

ROWS = 300_000
CHUNK = 2_000
KILLS = 3


def rows() -> tuple[bytes, int, int]:
    """The CSV, how many rows are bad, and how many field errors they carry (some rows have two)."""
    lines = ["title,priority,due_date,category"]
    bad = errors = 0
    for i in range(ROWS):
        priority = 9 if i % 997 == 0 else i % 5 + 1
        due = "2030-13-45" if i % 4999 == 0 else ("2030-01-15" if i % 3 == 0 else "")
        wrong = (priority == 9) + (due == "2030-13-45")
        bad += wrong > 0
        errors += wrong
        lines.append(f"Task {i},{priority},{due},Cat {i % 7}")
    return ("\n".join(lines) + "\n").encode(), bad, errors


async def test_three_sigkills_during_a_300k_row_import_lose_and_duplicate_nothing(stack, smtp, database, report):
    content, bad, errors = rows()
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    _web, url = stack.web()
    worker = stack.worker(processes=1, threads=2)
    conn = await asyncpg.connect(database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            headers = await signup(http, smtp, "kill3@example.com")
            response = await upload(http, headers, content, "big.csv")
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            started = time.monotonic()

            for k in range(KILLS):
                committed = await conn.fetchval("SELECT count(*) FROM import_chunks WHERE job_id = $1", job_id)
                # Kill after a random number of further committed chunks, at a random moment inside the next one.
                target = committed + rng.randint(3, 25)

                async def reached(target: int = target) -> bool:
                    n = await conn.fetchval("SELECT count(*) FROM import_chunks WHERE job_id = $1", job_id)
                    return n >= target

                await eventually(reached, 90, f"chunk {target} to commit before kill {k + 1}", every=0.005)
                await asyncio.sleep(rng.uniform(0, 0.06))  # a random moment inside the next chunk: the fault's timing
                worker.kill()
                killed_at = time.monotonic()
                state = await conn.fetchrow(
                    "SELECT status, (SELECT count(*) FROM import_chunks WHERE job_id = $1) AS chunks,"
                    " (SELECT count(*) FROM tasks WHERE import_id = $1) AS tasks FROM import_jobs WHERE id = $1",
                    job_id,
                )
                assert state["status"] == "processing", f"kill {k + 1} came after the job ended: nothing tested"
                assert state["chunks"] * CHUNK < ROWS
                worker = stack.worker(processes=1, threads=2)

                async def resumed(done: int = state["chunks"]) -> bool:
                    return await conn.fetchval("SELECT count(*) FROM import_chunks WHERE job_id = $1", job_id) > done

                await eventually(resumed, 60, f"the import to resume after kill {k + 1}", every=0.02)
                report(
                    f"kill {k + 1}: SIGKILL while processing",
                    chunks_committed=state["chunks"],
                    tasks_so_far=state["tasks"],
                    next_chunk_after_s=round(time.monotonic() - killed_at, 1),
                )

            job = await wait_job(http, headers, job_id, timeout=120)
            elapsed = time.monotonic() - started
            errors_csv = await http.get(f"/api/v1/imports/{job_id}/errors.csv", headers=headers)

            async def counted() -> dict | None:
                counters = (await http.get("/api/v1/metrics")).json()["counters"]
                return counters if counters["imports_completed"] else None

            before = await eventually(counted, 10, "the worker to flush its metrics")
            # Later flushes add nothing twice: once the worker has sent and counted a later email (flushed
            # after the import's counts), the import is still counted once.
            later = await http.post("/api/v1/users", json={"email": "later@example.com", "password": PASSWORD})
            assert later.status_code == 201, later.text
            await smtp.wait_for("later@example.com", timeout=30)

            async def later_counted() -> dict | None:
                counters = (await http.get("/api/v1/metrics")).json()["counters"]
                return counters if counters["emails_sent"] > before["emails_sent"] else None

            metrics = await eventually(later_counted, 10, "the worker to count the later email")

        db = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM tasks WHERE import_id = $1) AS tasks,
                      (SELECT count(DISTINCT title) FROM tasks WHERE import_id = $1) AS titles,
                      (SELECT count(*) FROM import_errors WHERE job_id = $1) AS errors,
                      (SELECT count(DISTINCT row_number) FROM import_errors WHERE job_id = $1) AS failed_rows,
                      (SELECT count(*) FROM import_chunks WHERE job_id = $1) AS chunks,
                      (SELECT max(seq) FROM import_chunks WHERE job_id = $1) AS last_seq,
                      (SELECT max(rows_consumed) FROM import_chunks WHERE job_id = $1) AS consumed,
                      (SELECT count(*) FROM categories) AS categories,
                      (SELECT attempts FROM import_jobs WHERE id = $1) AS attempts""",
            job_id,
        )
        report(
            "job after 3 kills",
            status=job["status"],
            rows_processed=job["rows_processed"],
            rows_imported=job["rows_imported"],
            rows_failed=job["rows_failed"],
            attempts=db["attempts"],
            seconds=round(elapsed, 1),
            seed=seed,
        )
        report(
            "database",
            tasks=db["tasks"],
            distinct_titles=db["titles"],
            error_rows=db["failed_rows"],
            field_errors=db["errors"],
            chunks=db["chunks"],
            errors_csv_lines=errors_csv.text.count("\r\n") - 1,
            metrics_imports_completed=metrics["imports_completed"],
            metrics_rows_imported=metrics["rows_imported"],
        )
        assert job["status"] == "completed", job
        assert (job["rows_processed"], job["rows_imported"], job["rows_failed"]) == (ROWS, ROWS - bad, bad)
        assert db["tasks"] == db["titles"] == ROWS - bad, "a row was lost or imported twice"
        assert (db["failed_rows"], db["errors"]) == (bad, errors), "an error row was lost or counted twice"
        assert db["chunks"] == db["last_seq"] == -(-ROWS // CHUNK) and db["consumed"] == ROWS
        assert db["categories"] == 7
        assert db["attempts"] >= KILLS + 1
        assert errors_csv.status_code == 200 and errors_csv.text.count("\r\n") == bad + 1
        assert metrics["imports_completed"] == 1 and metrics["rows_imported"] == ROWS - bad
    finally:
        await conn.close()

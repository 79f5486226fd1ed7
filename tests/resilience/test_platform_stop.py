"""Stops as a platform does them: SIGTERM to every process of a container at once (the Procfile command's
whole process group), sometimes twice, and through honcho as `make run` does (Ctrl-C / `kill <honcho>`).

Each stop must: commit or roll back the chunk in progress, hand the import back at once (a new worker
resumes it within seconds), and end every process of the group with exit code 0 well within the 30 s a
platform waits before SIGKILL, with no "Killing worker process" and no traceback. It is a race (the
worker processes get the signal from the platform and again from the Dramatiq master), so each scenario
stops at several random moments of an import.
"""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time
from typing import Any

import asyncpg
import httpx
import pytest

from tests.processes import Process, group_pids, wait_until_ready
from tests.support import eventually, signup, upload, wait_job

pytestmark = [pytest.mark.resilience, pytest.mark.slow]

ROWS = 150_000
CHUNK = 1_000
STOPS = 3
ENV = {"IMPORT_CHUNK_ROWS": str(CHUNK)}
RESUME_GOAL_S = 10


def big_csv(rows: int = ROWS) -> bytes:
    lines = ["title,priority,category"]
    lines += [f"Stop {i},{9 if i % 997 == 0 else i % 5 + 1},Cat {i % 5}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def unclean(process: Process) -> list[str]:
    """Log lines of an unclean stop."""
    bad = ("Killing worker process", "Traceback", "cannot schedule new futures", "exited unexpectedly")
    return [line for line in process.text().splitlines() if any(b in line for b in bad)]


async def chunks(conn: asyncpg.Connection, job_id: str) -> int:
    return await conn.fetchval("SELECT count(*) FROM import_chunks WHERE job_id = $1", job_id)


async def job_state(conn: asyncpg.Connection, job_id: str) -> Any:
    return await conn.fetchrow(
        """SELECT j.status, j.lease_id, (SELECT count(*) FROM tasks WHERE import_id = j.id) AS tasks,
                  coalesce((SELECT rows_imported FROM import_chunks WHERE job_id = j.id ORDER BY seq DESC LIMIT 1), 0)
                    AS checkpoint
           FROM import_jobs j WHERE j.id = $1""",
        job_id,
    )


async def assert_exactly_once(conn: asyncpg.Connection, job: dict[str, Any], job_id: str, rows: int) -> None:
    bad = len(range(0, rows, 997))
    assert job["status"] == "completed", job
    assert (job["rows_processed"], job["rows_imported"], job["rows_failed"]) == (rows, rows - bad, bad)
    db = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM tasks WHERE import_id = $1) AS tasks,
                  (SELECT count(DISTINCT title) FROM tasks WHERE import_id = $1) AS titles,
                  (SELECT count(DISTINCT row_number) FROM import_errors WHERE job_id = $1) AS failed""",
        job_id,
    )
    assert db["tasks"] == db["titles"] == rows - bad, "a row was lost or imported twice"
    assert db["failed"] == bad


async def test_sigterm_to_the_worker_process_group_at_any_moment_of_an_import(stack, smtp, database, report):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    _web, url = stack.web(extra_env=ENV)
    worker = stack.worker(processes=2, threads=2, extra_env=ENV)
    conn = await asyncpg.connect(database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            headers = await signup(http, smtp, "groupstop@example.com")
            response = await upload(http, headers, big_csv(), "stop.csv")
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            for n in range(STOPS):
                target = await chunks(conn, job_id) + rng.randint(2, 10)

                async def reached(target: int = target) -> bool:
                    return await chunks(conn, job_id) >= target

                await eventually(reached, 60, f"chunk {target} before stop {n + 1}", every=0.005)
                await asyncio.sleep(rng.uniform(0, 0.05))  # a random moment inside the next chunk: the fault's timing
                # Once as a platform does; then twice (the second 0-300 ms later), as a platform that repeats.
                signals = (signal.SIGTERM,) * (1 if n == 0 else 2)
                code, took = await asyncio.to_thread(worker.stop_group, *signals, gap=rng.uniform(0, 0.3))
                state = await job_state(conn, job_id)
                report(
                    f"stop {n + 1}: SIGTERM x{len(signals)} to the worker's process group",
                    exit_code=code,
                    every_process_gone_after_s=round(took, 2),
                    job=state["status"],
                    checkpoint_rows=state["checkpoint"],
                )
                assert code == 0, (code, worker.text()[-3000:])  # "timeout" if a process outlived stop_group's limit
                assert unclean(worker) == [], unclean(worker)
                # Handed back at once: no lease left to go stale, and exactly the committed chunks' tasks.
                assert state["status"] == "queued" and state["lease_id"] is None, dict(state)
                assert state["tasks"] == state["checkpoint"]

                done = await chunks(conn, job_id)
                restarted = time.monotonic()
                worker = stack.worker(processes=2, threads=2, extra_env=ENV)

                async def resumed(done: int = done) -> bool:
                    return await chunks(conn, job_id) > done

                await eventually(resumed, 60, f"the import to resume after stop {n + 1}", every=0.01)
                resume_s = time.monotonic() - restarted
                report(f"restart {n + 1}", import_resumed_after_s=round(resume_s, 2), goal_s=RESUME_GOAL_S)
                assert resume_s < RESUME_GOAL_S

            job = await wait_job(http, headers, job_id, timeout=180)
        await assert_exactly_once(conn, job, job_id, ROWS)
        report("job", status=job["status"], rows_imported=job["rows_imported"], seed=seed)
    finally:
        await conn.close()


async def test_honcho_stops_web_and_worker_cleanly_mid_import(stack, smtp, database, report):
    """`make run` (honcho) stopped with Ctrl-C (SIGINT to honcho; `kill <honcho pid>` does the same with
    SIGTERM): honcho sends SIGTERM to the process group of each Procfile command and SIGKILLs what is left
    5 s later (its default; `make run` waits 30 s): nothing may be left even then."""
    stop_signal = signal.SIGINT
    honcho, port = stack.honcho("web", "worker", extra_env={**ENV, "WORKER_PROCESSES": "2", "WORKER_THREADS": "2"})
    wait_until_ready(f"http://127.0.0.1:{port}", honcho)

    async def worker_ready() -> bool:
        return honcho.text().count("ready for action") >= 2

    await eventually(worker_ready, 30, "honcho's worker to be ready")
    groups = [int(pid) for pid in re.findall(r"started \(pid=(\d+)\)", honcho.text())]
    conn = await asyncpg.connect(database)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            headers = await signup(http, smtp, f"honcho{int(stop_signal)}@example.com")
            response = await upload(http, headers, big_csv(60_000), "honcho.csv")
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]

            async def some() -> bool:
                return await chunks(conn, job_id) >= 3

            await eventually(some, 60, "3 chunks", every=0.005)
            started = time.monotonic()
            honcho.popen.send_signal(stop_signal)
            code = await asyncio.to_thread(honcho.popen.wait, 30)
            took = time.monotonic() - started
            left = [pid for group in groups for pid in group_pids(group)]
            state = await job_state(conn, job_id)
            text = honcho.text()
            report(
                f"honcho stopped by {signal.Signals(stop_signal).name}",
                honcho_exit_code=code,
                stopped_after_s=round(took, 2),
                processes_left=len(left),
                job=state["status"],
            )
            assert len(groups) == 2 and left == []
            assert "SIGKILL" not in text, text[-3000:]
            assert "web.1 stopped (rc=0)" in text and "worker.1 stopped (rc=0)" in text, text[-3000:]
            assert unclean(honcho) == []
            assert state["status"] == "queued" and state["lease_id"] is None, dict(state)

        _web, url = stack.web(extra_env=ENV)
        stack.worker(processes=1, threads=2, extra_env=ENV)
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            job = await wait_job(http, headers, job_id, timeout=120)
        await assert_exactly_once(conn, job, job_id, 60_000)
    finally:
        await conn.close()

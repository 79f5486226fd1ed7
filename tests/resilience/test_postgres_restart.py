"""Scenario 5: PostgreSQL restarted under load (a cluster of this test's own, never the shared one).

While it is down, /health/ready answers 503 and every API request fails fast and cleanly: 503
problem+json with Retry-After, no hang, no 500 with a trace. Once it is back the same web
and worker processes serve again, without a restart; an import running across the restart completes
exactly, and task creations retried with their Idempotency-Key leave exactly one task each."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from service.migrate import migrate
from tests.faults import OwnPostgres
from tests.support import PASSWORD, eventually, signup, upload, wait_job

pytestmark = [pytest.mark.resilience, pytest.mark.slow]

CLIENTS = 8
DOWN_FOR = 5.0
IMPORT_ROWS = 150_000
KINDS = {"create", "list", "me", "ready"}


@dataclass
class Call:
    kind: str
    sent: float
    done: float
    status: int  # 0: no HTTP answer at all
    content_type: str
    body: str
    retry_after: str | None

    @property
    def seconds(self) -> float:
        return self.done - self.sent


async def test_postgres_restart_under_load_fails_cleanly_and_recovers(stack, smtp, report):
    with OwnPostgres() as pg:
        admin = await asyncpg.connect(pg.url())
        await admin.execute("CREATE DATABASE tasklane")
        await admin.close()
        database = pg.url("tasklane")
        await migrate(database)
        env = {"DATABASE_URL": database}
        web, url = stack.web(extra_env=env)
        stack.worker(processes=1, threads=2, extra_env=env)
        limits = httpx.Limits(max_connections=CLIENTS + 4)
        async with httpx.AsyncClient(base_url=url, timeout=20, limits=limits) as http:
            headers = await signup(http, smtp, "pg@example.com")
            calls: list[Call] = []
            keys: list[str] = []
            stop = asyncio.Event()

            async def call(kind: str, method: str, path: str, **kwargs) -> httpx.Response | None:
                sent = time.monotonic()
                try:
                    response = await http.request(method, path, **kwargs)
                except httpx.HTTPError as exc:
                    calls.append(Call(kind, sent, time.monotonic(), 0, "", repr(exc), None))
                    return None
                calls.append(
                    Call(
                        kind,
                        sent,
                        time.monotonic(),
                        response.status_code,
                        response.headers.get("content-type", ""),
                        response.text[:300],
                        response.headers.get("retry-after"),
                    )
                )
                return response

            async def client(i: int) -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    if n % 3 == 0:
                        key = f"pg-{i}-{n}-{uuid.uuid4().hex[:8]}"
                        keys.append(key)
                        await call(
                            "create", "POST", "/api/v1/tasks",
                            json={"title": key}, headers={**headers, "Idempotency-Key": key},
                        )  # fmt: skip
                    elif n % 3 == 1:
                        await call("list", "GET", "/api/v1/tasks?limit=5", headers=headers)
                    else:
                        await call("me", "GET", "/api/v1/users/me", headers=headers)
                    await asyncio.sleep(0.02)  # a client's pace between its requests: the load, not a wait

            async def probe() -> None:
                while not stop.is_set():
                    await call("ready", "GET", "/health/ready")
                    await asyncio.sleep(0.1)  # the probe's pace, as a platform's health check polls

            rows = "\n".join(f"Restart task {i},{i % 5 + 1}" for i in range(IMPORT_ROWS))
            response = await upload(http, headers, f"title,priority\n{rows}\n".encode(), "restart.csv")
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]

            def served(since: float) -> bool:
                """Every kind of call has been answered with a 2xx, for a call sent after `since`."""
                return {c.kind for c in calls if c.sent >= since and 200 <= c.status < 300} == KINDS

            load = [asyncio.create_task(client(i)) for i in range(CLIENTS)] + [asyncio.create_task(probe())]
            await eventually(lambda: served(0), 30, "the load to be served before the stop")
            stop_begun = time.monotonic()
            await asyncio.to_thread(pg.stop)
            down = time.monotonic()
            await asyncio.sleep(DOWN_FOR)  # the outage itself: the fault this scenario holds, not a wait
            start_begun = time.monotonic()
            await asyncio.to_thread(pg.start)
            up = time.monotonic()
            # The same processes serve again, without a restart; then the load goes on as long again, so that
            # a failure after the recovery would show.
            await eventually(lambda: served(up), 30, "every kind of call to be served again")
            recovered = time.monotonic()
            await eventually(lambda: served(recovered), 30, "every kind of call to be served after the recovery")
            stop.set()
            await asyncio.gather(*load)

            # Creations that got no 201: retried with the same key now that the database is back.
            created = {c.body for c in calls if c.kind == "create" and c.status == 201}
            retried = 0
            for key in keys:
                response = await http.post(
                    "/api/v1/tasks", json={"title": key}, headers={**headers, "Idempotency-Key": key}
                )
                assert response.status_code in (200, 201), response.text
                retried += 1
            job = await wait_job(http, headers, job_id, timeout=60)
            # The worker serves again too: a registration's email goes out.
            after = await http.post("/api/v1/users", json={"email": "after@example.com", "password": PASSWORD},
                                    headers={"X-Forwarded-For": "10.9.9.9"})  # fmt: skip
            assert after.status_code == 201, after.text
            await smtp.wait_for("after@example.com", timeout=20)

        conn = await asyncpg.connect(database)
        try:
            titles = await conn.fetch("SELECT title, count(*) AS n FROM tasks WHERE import_id IS NULL GROUP BY title")
            imported = await conn.fetchval("SELECT count(*) FROM tasks WHERE import_id = $1", job_id)
            import_attempts = await conn.fetchval("SELECT attempts FROM import_jobs WHERE id = $1", job_id)
        finally:
            await conn.close()

    api = [c for c in calls if c.kind != "ready"]
    ready = [c for c in calls if c.kind == "ready"]
    while_down = [c for c in api if c.sent >= down and c.done <= start_begun]
    ready_down = [c for c in ready if c.sent >= down and c.done <= start_begun]
    first_ok = min((c.done for c in api if c.sent >= up and 200 <= c.status < 300), default=None)
    first_ready = min((c.done for c in ready if c.sent >= up and c.status == 200), default=None)
    late_failures = [c for c in api if c.sent >= recovered and not 200 <= c.status < 300]
    unhandled = [line for line in web.logs() if line.get("message") == "unhandled error"]
    by_status: dict[int, int] = {}
    for c in api:
        by_status[c.status] = by_status.get(c.status, 0) + 1
    report(
        "load",
        requests=len(api),
        by_status=dict(sorted(by_status.items())),
        clients=CLIENTS,
        stop_took_s=round(down - stop_begun, 2),
        down_for_s=round(start_begun - down, 1),
        start_took_s=round(up - start_begun, 2),
    )
    report(
        "while down",
        requests=len(while_down),
        statuses=sorted({c.status for c in while_down}),
        slowest_s=round(max((c.seconds for c in while_down), default=0), 3),
        ready=sorted({c.status for c in ready_down}),
    )
    report(
        "recovery",
        first_2xx_after_start_s=None if first_ok is None else round(first_ok - up, 2),
        ready_200_after_start_s=None if first_ready is None else round(first_ready - up, 2),
        failures_after_recovery=len(late_failures),
        unhandled_errors_logged=len(unhandled),
    )
    report(
        "no loss, no duplicate",
        creations=len(keys),
        answered_201_first_time=len(created),
        retried_with_same_key=retried,
        tasks_in_db=len(titles),
        max_copies=max((r["n"] for r in titles), default=0),
        import_status=job["status"],
        import_rows=imported,
        import_attempts=import_attempts,
    )
    assert while_down and ready_down, "nothing was sent while PostgreSQL was down"
    for c in while_down:
        assert c.status == 503, c
        assert c.content_type.startswith("application/problem+json") and c.retry_after, c
    # Failing fast: a call sent in the first half of the outage has its answer before PostgreSQL is back.
    first_half = [c for c in api if down <= c.sent < (down + start_begun) / 2]
    assert first_half and all(c.done <= start_begun for c in first_half), [
        c for c in first_half if c.done > start_begun
    ]
    assert {c.status for c in ready_down} == {503}
    assert not [c for c in calls if c.status >= 500 and c.status != 503], "a 5xx other than 503"
    assert not [c for c in calls if c.status == 0], "a request got no answer (or none within the client's timeout)"
    assert not unhandled, unhandled[:2]
    assert first_ok is not None and first_ready is not None
    assert not late_failures, late_failures[:3]
    assert sorted(r["title"] for r in titles) == sorted(keys) and all(r["n"] == 1 for r in titles)
    assert job["status"] == "completed" and job["rows_imported"] == imported == IMPORT_ROWS

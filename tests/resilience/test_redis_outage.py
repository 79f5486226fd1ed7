"""Scenario 2: Redis (the broker, the rate limits and the metrics) stops while 50 people register and 5
imports are uploaded. Every request still succeeds (the rate limiter fails open, enqueues are left to the
relay); Redis comes back empty, with no persistence; every activation email is delivered
exactly once and every import completes, re-driven from PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import asyncpg
import httpx
import pytest

from service.messages import make_broker
from tests.faults import OwnRedis
from tests.support import PASSWORD, client_address, eventually, queue_size, signup, upload

pytestmark = [pytest.mark.resilience, pytest.mark.slow]

USERS = 50
IMPORTS = 5
IMPORT_ROWS = 20_000


def csv_file(n: int) -> bytes:
    lines = ["title,priority"] + [f"Import {n} task {i},{i % 5 + 1}" for i in range(IMPORT_ROWS)]
    return ("\n".join(lines) + "\n").encode()


async def test_redis_outage_and_empty_restart_lose_no_email_and_no_import(stack, smtp, database, settings, report):
    with OwnRedis() as redis_server:
        env = {"REDIS_URL": redis_server.url}
        _web, url = stack.web(extra_env=env)
        worker = stack.worker(processes=1, threads=4, extra_env=env)
        conn = await asyncpg.connect(database)
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=64)) as http:
                uploader = await signup(http, smtp, "uploader@example.com", forwarded_for=client_address(1000))

                # 10 registrations with Redis up; it is stopped as they answer, while 10 more are sent (racing
                # the stop); the last 30 and the 5 uploads come while it is down. Messages queued before the
                # stop are lost with it.
                answered = 0
                stop_now, down = asyncio.Event(), asyncio.Event()

                async def register(n: int) -> tuple[int, float]:
                    nonlocal answered
                    if n >= 10:
                        await (stop_now if n < 20 else down).wait()
                    t0 = time.monotonic()
                    response = await http.post(
                        "/api/v1/users",
                        json={"email": f"user{n}@example.com", "password": PASSWORD},
                        headers={"X-Forwarded-For": client_address(n)},
                    )
                    answered += 1
                    if answered == 10:
                        stop_now.set()
                    return response.status_code, time.monotonic() - t0

                async def send_file(n: int) -> tuple[int, float, str]:
                    await down.wait()
                    t0 = time.monotonic()
                    response = await upload(http, uploader, csv_file(n), f"import{n}.csv")
                    return response.status_code, time.monotonic() - t0, response.json().get("id", "")

                async def outage() -> httpx.Response:
                    await stop_now.wait()
                    await asyncio.to_thread(redis_server.stop)
                    down.set()
                    return await http.get("/health/ready")

                registered, uploaded, ready = await asyncio.gather(
                    asyncio.gather(*(register(n) for n in range(USERS))),
                    asyncio.gather(*(send_file(n) for n in range(IMPORTS))),
                    outage(),
                )
                down_at = time.monotonic()
                # Rate-limited and plain routes alike still answer while Redis is down (the limiter fails open).
                login = await http.post(
                    "/api/v1/auth/login", json={"email": "uploader@example.com", "password": PASSWORD}
                )
                me = await http.get("/api/v1/users/me", headers=uploader)
                assert (login.status_code, me.status_code) == (200, 200), (login.text, me.text)
                statuses = sorted({s for s, _ in registered} | {s for s, _, _ in uploaded})
                slowest = max(t for _, t in registered + [(s, t) for s, t, _ in uploaded])
                report(
                    "Redis stopped after 10 of 50 registrations (10 racing the stop, 30 and 5 uploads after)",
                    statuses=statuses,
                    slowest_request_s=round(slowest, 2),
                    ready_while_down=ready.status_code,
                    login_and_me_while_down=(login.status_code, me.status_code),
                )
                assert ready.status_code == 503 and "redis" in ready.json()["detail"], ready.text
                assert [s for s, _ in registered] == [201] * USERS
                assert [s for s, _, _ in uploaded] == [202] * IMPORTS
                job_ids = [job_id for _, _, job_id in uploaded]

                # Nothing can be delivered while the broker is away: the worker's relay tries to enqueue again
                # the work whose messages were lost, and cannot. The work waits in PostgreSQL.
                def relay_failed() -> bool:
                    return "relay sweep failed" in worker.text()

                await eventually(relay_failed, 30, "the worker's relay to meet the outage", every=0.1)
                pending = await conn.fetchval(
                    "SELECT count(*) FROM emails WHERE status <> 'sent' AND to_address LIKE 'user%'"
                )
                queued = await conn.fetchval("SELECT count(*) FROM import_jobs WHERE status = 'queued'")
                sent_before = USERS - pending
                report("while down", emails_sent_before_the_stop=sent_before, emails_waiting=pending,
                       imports_queued=queued, down_for_s=round(time.monotonic() - down_at, 1))  # fmt: skip
                assert pending >= 30 and queued == IMPORTS, "the outage caught too little to test"

                redis_server.start()  # empty: no queue, no message, no rate-limit key survived
                back_at = time.monotonic()
                addresses = [f"user{n}@example.com" for n in range(USERS)]

                async def all_delivered() -> bool:
                    return all(smtp.to(a) for a in addresses)

                await eventually(all_delivered, 60, "every activation email after the restart", every=0.1)
                emails_after = time.monotonic() - back_at

                async def all_imported() -> bool:
                    done = await conn.fetchval(
                        "SELECT count(*) FROM import_jobs WHERE id = ANY($1::uuid[]) AND status = 'completed'", job_ids
                    )
                    return done == IMPORTS

                await eventually(all_imported, 60, "every import after the restart", every=0.1)
                imports_after = time.monotonic() - back_at
                # No duplicate can follow: every email row is recorded as sent (a sent row is never claimed
                # again), every import as completed, and no message is left in the broker for any of them.
                broker = make_broker(dataclasses.replace(settings, redis_url=redis_server.url))
                all_sent = "SELECT bool_and(status = 'sent') FROM emails"
                await eventually(lambda: conn.fetchval(all_sent), 30, "every email recorded as sent")

                def drained() -> bool:
                    return not any(queue_size(broker, actor) for actor in ("emails.send", "imports.process"))

                await eventually(drained, 30, "the broker's queues to drain")
                ready_after = (await http.get("/health/ready")).status_code

            counts = [len(smtp.to(a)) for a in addresses]
            jobs = await conn.fetch(
                "SELECT rows_imported, rows_failed, (SELECT count(*) FROM tasks t WHERE t.import_id = j.id) AS tasks"
                " FROM import_jobs j WHERE id = ANY($1::uuid[])",
                job_ids,
            )
            emails = await conn.fetchrow(
                "SELECT count(*) FILTER (WHERE status = 'sent') AS sent, max(attempts) AS max_attempts FROM emails"
                " WHERE to_address LIKE 'user%'"
            )
            report(
                "after Redis came back empty",
                emails_delivered_s=round(emails_after, 1),
                imports_completed_s=round(imports_after, 1),
                emails_per_address=sorted(set(counts)),
                emails_sent=emails["sent"],
                max_attempts=emails["max_attempts"],
                tasks_per_import=sorted({j["tasks"] for j in jobs}),
                ready_after=ready_after,
            )
            assert counts == [1] * USERS, "an activation email was lost or sent twice"
            assert len(smtp.to("uploader@example.com")) == 2  # activation, and the welcome caught by the outage
            assert all(p.popen.poll() is None for p in stack.processes), "a process died during the outage"
            assert emails["sent"] == USERS
            assert all(j["tasks"] == j["rows_imported"] == IMPORT_ROWS and j["rows_failed"] == 0 for j in jobs)
            assert ready_after == 200
            # Every code works: the activation emails are the ones the accounts expect.
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                from tests.support import code_in

                for n in (0, USERS - 1):
                    code = code_in(smtp.to(f"user{n}@example.com")[0])
                    activated = await http.post(
                        "/api/v1/users/activate", json={"code": code}, auth=(f"user{n}@example.com", PASSWORD)
                    )
                    assert activated.status_code == 200, activated.text
        finally:
            await conn.close()

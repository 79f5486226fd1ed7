"""Scenario 3: the SMTP server refuses connections for 30 s, then comes back. Every email queued meanwhile is
delivered exactly once, by the workers' retries (2 s doubling); an email that still fails after its last
attempt is recorded as failed and counted in `emails_failed`, never silently dropped."""

from __future__ import annotations

import asyncio
import threading
import time
from email.message import Message

import asyncpg
import httpx
import pytest

from service.messages import make_broker
from tests.support import PASSWORD, SMTPSink, client_address, eventually, free_port, queue_size

pytestmark = [pytest.mark.resilience, pytest.mark.slow]

OUTAGE = 30.0
EARLY, LATE = 5, 5  # registrations at the start of the outage, and half-way through it


class FlakySMTP:
    """A real SMTP server on a fixed port that can be taken down (connections refused) and brought back."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Message] = []
        self.lock = threading.Lock()
        self.sink: SMTPSink | None = None

    def up(self) -> None:
        sink = SMTPSink("127.0.0.1", self.port)
        sink.messages, sink._lock = self.messages, self.lock
        sink.start()
        self.sink = sink

    def down(self) -> None:
        if self.sink is not None:
            self.sink.stop()
            self.sink = None

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


async def counters(http: httpx.AsyncClient) -> dict[str, int]:
    return (await http.get("/api/v1/metrics")).json()["counters"]


async def test_smtp_refusing_for_30s_then_back_delivers_every_email_once(stack, database, settings, report):
    smtp = FlakySMTP()
    broker = make_broker(settings)  # the workers' broker, to see what is left in their emails queue

    async def settled() -> bool:
        """No emails.send message is left, waiting, delayed (a retry) or in a worker's hands."""
        return queue_size(broker, "emails.send") == 0

    env = {"SMTP_PORT": str(smtp.port)}
    _web, url = stack.web(extra_env=env)
    worker = stack.worker(processes=1, threads=4, extra_env=env)
    conn = await asyncpg.connect(database)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:

            async def register(n: int) -> int:
                response = await http.post(
                    "/api/v1/users",
                    json={"email": f"mail{n}@example.com", "password": PASSWORD},
                    headers={"X-Forwarded-For": client_address(n)},
                )
                return response.status_code

            # The server is down (connection refused) from the first registration on.
            started = time.monotonic()
            statuses = [await register(n) for n in range(EARLY)]
            await asyncio.sleep(OUTAGE / 2)  # the outage itself: the fault this scenario holds, not a wait
            statuses += [await register(n) for n in range(EARLY, EARLY + LATE)]
            await asyncio.sleep(OUTAGE - (time.monotonic() - started))  # the rest of the outage, as above
            failed_attempts = await conn.fetchval("SELECT coalesce(sum(attempts), 0) FROM emails")
            given_up_during = await conn.fetchval("SELECT count(*) FROM emails WHERE status = 'failed'")
            smtp.up()
            back_at = time.monotonic()
            assert statuses == [201] * (EARLY + LATE)
            addresses = [f"mail{n}@example.com" for n in range(EARLY + LATE)]

            async def delivered() -> bool:
                return all(smtp.to(a) for a in addresses)

            await eventually(delivered, 100, "every email after SMTP came back", every=0.1)
            after = time.monotonic() - back_at

            async def all_sent() -> bool:
                return await conn.fetchval("SELECT bool_and(status = 'sent') FROM emails")

            # A sent row is never claimed again, and no message for one is left: no duplicate can follow.
            await eventually(all_sent, 30, "every email recorded as sent")
            await eventually(settled, 30, "the emails queue to drain")
            rows = await conn.fetch("SELECT status, attempts FROM emails ORDER BY created_at")

            async def all_counted() -> dict[str, int] | None:
                # The worker takes its counts to Redis about every METRICS_FLUSH_INTERVAL
                values = await counters(http)
                return values if values["emails_sent"] >= len(addresses) else None

            metrics = await eventually(all_counted, 10, "the sent emails to be counted")
            report(
                f"SMTP refused connections for {OUTAGE:g} s",
                registrations=len(statuses),
                attempts_failed_during_outage=failed_attempts,
                given_up_during_outage=given_up_during,
            )
            report(
                "after it came back",
                all_delivered_after_s=round(after, 1),
                emails_per_address=sorted({len(smtp.to(a)) for a in addresses}),
                attempts_per_email=[r["attempts"] for r in rows],
                statuses=sorted({r["status"] for r in rows}),
                emails_sent=metrics["emails_sent"],
                emails_failed=metrics["emails_failed"],
            )
            assert given_up_during == 0, "emails were given up during a 30 s outage"
            assert [len(smtp.to(a)) for a in addresses] == [1] * len(addresses), "an email was lost or sent twice"
            assert [r["status"] for r in rows] == ["sent"] * len(addresses)
            assert metrics["emails_sent"] == len(addresses) and metrics["emails_failed"] == 0

            # An email that keeps failing: its last attempt records it as failed and counts it. Seven
            # failed attempts are fast-forwarded (the real schedule takes minutes); the eighth is real.
            smtp.down()
            assert await register(99) == 201
            doomed = "mail99@example.com"

            async def first_failure() -> asyncpg.Record | None:
                return await conn.fetchrow(
                    "SELECT id FROM emails WHERE to_address = $1 AND status = 'pending' AND attempts = 1", doomed
                )

            row = await eventually(first_failure, 15, "the first failed attempt")
            await conn.execute("UPDATE emails SET attempts = 7, next_attempt_at = now() WHERE id = $1", row["id"])

            async def given_up() -> asyncpg.Record | None:
                return await conn.fetchrow(
                    "SELECT status, attempts, last_error FROM emails WHERE id = $1 AND status = 'failed'", row["id"]
                )

            failed = await eventually(given_up, 20, "the last attempt to record the email as failed")

            async def counted() -> dict[str, int] | None:
                values = await counters(http)
                return values if values["emails_failed"] else None

            metrics = await eventually(counted, 10, "emails_failed to count it")
            smtp.up()
            # No message is left to retry it (and the relay never re-drives a failed row): nothing more can come.
            await eventually(settled, 30, "the emails queue to drain")
            final = await conn.fetchrow("SELECT status, attempts FROM emails WHERE id = $1", row["id"])
            logged = [line for line in worker.logs() if line.get("message") == "email given up"]
            report(
                "an email failing its 8th attempt",
                status=final["status"],
                attempts=final["attempts"],
                last_error=failed["last_error"][:60],
                emails_failed_metric=metrics["emails_failed"],
                logged=len(logged),
                received_later=len(smtp.to(doomed)),
            )
            assert (final["status"], final["attempts"]) == ("failed", 8)
            assert failed["last_error"]
            assert metrics["emails_failed"] == 1
            assert len(logged) == 1 and logged[0]["email_id"] == str(row["id"])
    finally:
        smtp.down()
        await conn.close()
        broker.close()

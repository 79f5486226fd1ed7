"""Scenario 4: completion webhooks against misbehaving receivers, through real worker processes.

- A receiver answering 500, 500, then 200: delivered on the third attempt, every attempt signed with the
  same webhook-id and body, each signature valid for the public `standardwebhooks` library.
- A receiver that hangs, and one that trickles header lines for ever: each attempt is cut at the 5 s
  limit, and the worker thread is freed: with 2 worker threads, another job's webhook is delivered while
  the first hangs, and when both threads are stuck, the next job waits only until the first cut.

Orderings are read from the attempts the service records (start and duration, in one clock), not from
figures measured by the test.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

import httpx
import pytest

from tests.conftest import TEST_WEBHOOK_SECRET
from tests.receiver import Reply
from tests.support import eventually, signup, upload, wait_job

pytestmark = [pytest.mark.resilience, pytest.mark.slow]

CSV = b"title,priority\nfirst,1\nsecond,2\nthird,9\n"
TIMEOUT, HANG = 5, 60  # WEBHOOK_TIMEOUT, and how long the hanging receiver waits before it would answer


async def deliveries(http: httpx.AsyncClient, headers: dict[str, str], job_id: str) -> list[dict]:
    response = await http.get(f"/api/v1/imports/{job_id}/deliveries", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def test_a_receiver_failing_twice_gets_the_third_attempt_signed_and_identical(
    stack, smtp, webhook_receiver, report
):
    receiver = webhook_receiver([500, 500, 200])
    _web, url = stack.web()
    stack.worker(processes=1, threads=2)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        headers = await signup(http, smtp, "hooks@example.com")
        response = await upload(http, headers, CSV, webhook_url=receiver.url)
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        job = await wait_job(http, headers, job_id, timeout=30)
        received = await receiver.wait_for(3, timeout=30)

        async def delivered() -> list[dict] | None:
            attempts = await deliveries(http, headers, job_id)
            return attempts if any(a["status_code"] == 200 for a in attempts) else None

        # Delivered is final: the event is never claimed again, so no fourth call can come after this.
        attempts = await eventually(delivered, 30, "the delivery recorded")

    received = receiver.received()
    payloads = [r.verify(TEST_WEBHOOK_SECRET) for r in received]  # raises on a bad signature
    report(
        "receiver answering 500, 500, 200",
        calls=len(received),
        attempts=[(a["attempt"], a["status_code"], a["error"]) for a in attempts],
        webhook_ids=len({r.headers["webhook-id"] for r in received}),
        distinct_bodies=len({r.body for r in received}),
        signatures_valid=len(payloads),
        gaps_s=[round(b.at - a.at, 2) for a, b in pairwise(received)],
    )
    assert len(received) == 3
    assert [(a["attempt"], a["status_code"]) for a in attempts] == [(1, 500), (2, 500), (3, 200)]
    assert len({r.headers["webhook-id"] for r in received}) == 1 and len({r.body for r in received}) == 1
    # Each attempt is signed with its own timestamp (verified above, each against its own headers).
    assert all(r.headers["webhook-timestamp"].isdigit() for r in received)
    data = payloads[-1]["data"]
    assert payloads[-1]["type"] == "import.completed"
    assert (data["job_id"], data["rows_imported"], data["rows_failed"]) == (job_id, 2, 1)
    assert job["status"] == "completed"


async def test_hanging_receivers_are_cut_at_5s_and_free_the_worker_thread(stack, smtp, webhook_receiver, report):
    hanging = webhook_receiver([Reply(hang=HANG)])
    trickling = webhook_receiver([Reply(trickle=0.5)])
    fine_1, fine_2 = webhook_receiver(), webhook_receiver()
    # Two threads for notifications (one more runs the imports); retries far away, so a timed-out event
    # does not come back during the test.
    env = {"WEBHOOK_TIMEOUT": str(TIMEOUT), "WEBHOOK_RETRY_BASE": "60", "WORKER_NOTIFICATION_THREADS": "2"}
    _web, url = stack.web(extra_env=env)
    stack.worker(processes=1, threads=1, extra_env=env)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        headers = await signup(http, smtp, "hang@example.com")

        async def job(receiver) -> str:
            response = await upload(http, headers, CSV, webhook_url=receiver.url)
            assert response.status_code == 202, response.text
            return response.json()["id"]

        # 1. A hanging receiver holds one thread.
        hang_job = await job(hanging)
        t_hang = (await hanging.wait_for(1, timeout=30))[0].at
        # 2. The other thread still works: another job's webhook arrives while the first hangs.
        fine_1_job = await job(fine_1)
        t_fine_1 = (await fine_1.wait_for(1, timeout=30))[0].at
        # 3. A trickling receiver holds the second thread: both are stuck now.
        trickle_job = await job(trickling)
        t_trickle = (await trickling.wait_for(1, timeout=30))[0].at
        # 4. The next job waits for a thread: it gets one when the first attempt is cut, not after 60 s.
        fine_2_job = await job(fine_2)
        t_fine_2 = (await fine_2.wait_for(1, timeout=30))[0].at

        async def recorded() -> list[list[dict]] | None:
            found = [await deliveries(http, headers, j) for j in (hang_job, fine_1_job, trickle_job, fine_2_job)]
            return found if all(found) else None

        hang_attempts, fine_1_attempts, trickle_attempts, fine_2_attempts = await eventually(
            recorded, 15, "the attempts to be recorded"
        )

    report(
        "hanging receiver",
        other_webhook_delivered_during_hang_after_s=round(t_fine_1 - t_hang, 2),
        attempt=(hang_attempts[0]["error"], hang_attempts[0]["duration_ms"]),
    )
    report(
        "trickling receiver (a header line every 0.5 s)",
        attempt=(trickle_attempts[0]["error"], trickle_attempts[0]["duration_ms"]),
    )
    report(
        "both threads stuck: next job's webhook",
        delivered_after_first_hang_started_s=round(t_fine_2 - t_hang, 2),
        trickle_started_after_hang_s=round(t_trickle - t_hang, 2),
    )
    for attempts in (hang_attempts, trickle_attempts):
        assert len(attempts) == 1
        assert attempts[0]["status_code"] is None
        assert attempts[0]["error"] == "timed out after 5 s"
        # Cut at the limit, not when (if ever) the receiver would have answered
        assert TIMEOUT * 1000 <= attempts[0]["duration_ms"] < HANG * 1000

    def start(attempts: list[dict]) -> datetime:
        return datetime.fromisoformat(attempts[0]["created_at"])

    def end(attempts: list[dict]) -> datetime:
        return start(attempts) + timedelta(milliseconds=attempts[0]["duration_ms"])

    assert start(fine_1_attempts) < end(hang_attempts), "a hanging receiver blocked the other worker thread"
    assert start(trickle_attempts) < end(hang_attempts), "the setup was too slow: both threads were not stuck at once"
    # Both threads stuck: the next webhook went out once the first stuck attempt was cut, not before
    # (and not when the hanging receiver would have answered).
    assert end(hang_attempts) <= start(fine_2_attempts) < start(hang_attempts) + timedelta(seconds=HANG)

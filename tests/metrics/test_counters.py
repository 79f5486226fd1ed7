"""Every documented business counter moves when its event happens: the test walks service.metrics.COUNTERS,
so a counter added without an event that makes it count (or one that never counts) fails the build."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from service import metrics
from service.imports import pipeline
from service.notifications import webhooks
from service.notifications.emails import LogMailer
from tests.metrics.conftest import read
from tests.support import (
    PASSWORD,
    activate,
    bearer,
    code_in,
    db_value,
    deliver_pending_emails,
    fail_every_attempt,
    login,
    register,
    send_email,
)

CSV = b"title,priority\nOne,1\nTwo,2\nThree,9\n"  # two rows import, one is refused

# Passes the checks at upload (its start is text), fails in the worker: NUL bytes deep in it.
UNREADABLE = b"title\n" + b"a task\n" * 2000 + b"\x00\n"


async def _upload(client: Any, headers: dict[str, str], content: bytes) -> str:
    response = await client.post("/api/v1/imports", files={"file": ("t.csv", content, "text/csv")}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def _webhook(ctx: Any, client: Any, receiver: Any, user_id: uuid.UUID, job_id: str, http: Any) -> str:
    """Queue and attempt the completion webhook of `job_id` once; the attempt's outcome."""
    async with ctx.db.transaction():
        job = await webhooks.queue_import_event(
            ctx,
            job_id=uuid.UUID(job_id),
            user_id=user_id,
            url=receiver.url,
            event_type="import.completed",
            data={"status": "completed", "rows_processed": 1, "rows_imported": 1, "rows_failed": 0,
                  "finished_at": "2026-01-01T00:00:00Z"},
        )  # fmt: skip
    return await webhooks.deliver(ctx, http, uuid.UUID(job.args[0]))


async def test_every_documented_counter_counts_its_event(metrics_client, ctx, smtp, webhook_receiver):
    client = metrics_client
    state: dict[str, Any] = {}

    async def registration() -> dict[str, int]:
        assert (await register(client, "walk@example.com")).status_code == 201
        return {"registrations": 1}

    async def email_sent() -> dict[str, int]:
        assert await deliver_pending_emails(ctx) == ["sent"]  # the activation code, through SMTP
        state["code"] = code_in((await smtp.wait_for("walk@example.com"))[-1])
        return {"emails_sent": 1, "emails_printed": 0}

    async def activation() -> dict[str, int]:
        assert (await activate(client, "walk@example.com", state["code"])).status_code == 200
        await deliver_pending_emails(ctx)  # the welcome email (counted as sent: not this walk's step)
        tokens = (await login(client, "walk@example.com")).json()
        state["headers"] = bearer(tokens)
        state["user_id"] = await db_value(ctx, "SELECT id FROM accounts WHERE email = 'walk@example.com'")
        return {"activations": 1}

    async def login_failed() -> dict[str, int]:
        assert (await login(client, "walk@example.com", PASSWORD + "x")).status_code == 401
        return {"logins_failed": 1}

    async def task_created() -> dict[str, int]:
        created = await client.post("/api/v1/tasks", json={"title": "By hand"}, headers=state["headers"])
        assert created.status_code == 201
        return {"tasks_created": 1}

    async def import_completed() -> dict[str, int]:
        job = await _upload(client, state["headers"], CSV)
        assert await pipeline.run_job(ctx, uuid.UUID(job)) == "completed"
        return {"imports_completed": 1, "rows_imported": 2, "tasks_created": 2}

    async def import_failed() -> dict[str, int]:
        job = await _upload(client, state["headers"], UNREADABLE)
        assert await pipeline.run_job(ctx, uuid.UUID(job)) == "failed"
        return {"imports_failed": 1, "tasks_created": 0}

    async def import_cancelled() -> dict[str, int]:
        job = await _upload(client, state["headers"], CSV)
        response = await client.post(f"/api/v1/imports/{job}/cancel", headers=state["headers"])
        assert response.json()["status"] == "cancelled"  # before any worker took it: ended by the request
        return {"imports_cancelled": 1}

    async def email_printed() -> dict[str, int]:
        await client.post("/api/v1/auth/password-reset", json={"email": "walk@example.com"})
        printing = dataclasses.replace(ctx.settings, smtp_host="")
        email_id = await db_value(ctx, "SELECT id FROM emails WHERE kind = 'password_reset'")
        assert await send_email(ctx, email_id, LogMailer(printing)) == "printed"
        return {"emails_printed": 1, "emails_sent": 0}

    async def email_failed() -> dict[str, int]:
        assert (await register(client, "bounce@example.com")).status_code == 201
        email_id = await db_value(ctx, "SELECT id FROM emails WHERE to_address = 'bounce@example.com'")
        smtp.refusing = True
        assert await fail_every_attempt(ctx, email_id) == "failed"
        smtp.refusing = False
        return {"emails_failed": 1, "emails_sent": 0}

    def delivery(reply: int, outcome: str) -> Callable[[], Awaitable[dict[str, int]]]:
        async def attempt() -> dict[str, int]:
            http = webhooks.make_http_client(ctx.settings)
            try:
                job = await _upload(client, state["headers"], CSV)
                assert await _webhook(ctx, client, webhook_receiver([reply]), state["user_id"], job, http) == outcome
            finally:
                await http.aclose()
            return {f"webhook_deliveries_{outcome}": 1}

        return attempt

    # The events in the order they can happen, each with how much it moves which counters.
    walk = [
        registration,
        email_sent,
        activation,
        login_failed,
        task_created,
        import_completed,
        import_failed,
        import_cancelled,
        email_printed,
        email_failed,
        delivery(200, "delivered"),
        delivery(500, "retrying"),
        delivery(400, "failed"),
    ]
    moved: set[str] = set()
    for step in walk:
        before = (await read(client))["counters"]
        expected = await step()
        after = (await read(client))["counters"]
        assert {name: after[name] - before[name] for name in expected} == expected, step.__name__
        moved |= {name for name, n in expected.items() if n}
    assert moved == metrics.COUNTERS.keys(), "every documented counter needs an event here that moves it"

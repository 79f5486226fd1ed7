"""Deleting an account deletes its tasks (a trigger since migration 0009, no longer a foreign key), also the
tasks a POST or an import chunk was committing at that very moment."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from service.db import Queries
from tests.support import eventually
from tests.tasks.conftest import API

TASKS = Queries("tasks")
DEADLINE = 30  # seconds: generous, as the machine may be busy


async def user_id(conn: asyncpg.Connection, email: str) -> uuid.UUID:
    return await conn.fetchval("SELECT id FROM accounts WHERE email = $1", email)


async def count_tasks(conn: asyncpg.Connection, owner: uuid.UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM tasks WHERE user_id = $1", owner)


async def test_deleting_an_account_deletes_its_tasks_and_no_one_else_s(alice, bob, client, settings):
    for i in range(3):
        await alice.create(title=f"a{i}")
    await bob.create(title="b")

    assert (await client.delete(f"{API}/users/me", headers=alice.headers)).status_code == 204

    conn = await asyncpg.connect(settings.database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM tasks") == 1
    finally:
        await conn.close()
    assert [t["title"] for t in (await bob.list()).json()["items"]] == ["b"]


async def _deleted_while_writing(
    database_url: str, email: str, write: Callable[[asyncpg.Connection], Awaitable]
) -> int:
    """Tasks of the account left after it is deleted while `write` holds its transaction open."""
    writer, deleter, watcher = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        owner = await user_id(watcher, email)
        transaction = writer.transaction()
        await transaction.start()
        await write(writer)
        deleting = asyncio.create_task(deleter.execute("DELETE FROM accounts WHERE id = $1", owner))
        # The delete waits for the writer's lock (on the account, or on its import job).
        pid = deleter.get_server_pid()
        waiting = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1"
        await eventually(lambda: watcher.fetchval(waiting, pid), DEADLINE, "the delete to wait for a lock", every=0.01)
        await transaction.commit()
        async with asyncio.timeout(DEADLINE):
            await deleting
        return await count_tasks(watcher, owner)
    finally:
        for conn in (writer, deleter, watcher):
            await conn.close()


async def test_a_task_posted_while_its_account_is_deleted_goes_with_the_account(alice, settings):
    async def post(conn: asyncpg.Connection) -> None:
        owner = await user_id(conn, alice.email)
        values = {"user_id": owner, "title": "late", "description": None, "status": "todo", "priority": 3,
                  "due_date": None, "category": None}  # fmt: skip
        assert await conn.fetchrow(TASKS.create_task.sql, *TASKS.create_task.args(values)) is not None

    assert await _deleted_while_writing(settings.database_url, alice.email, post) == 0


async def test_an_import_chunk_committed_while_its_account_is_deleted_goes_with_the_account(alice, settings):
    conn = await asyncpg.connect(settings.database_url)
    try:
        owner = await user_id(conn, alice.email)
        job = await conn.fetchval(
            "INSERT INTO import_jobs (id, user_id, filename, kind, stored_path, size_bytes)"
            " VALUES (gen_random_uuid(), $1, 'a.csv', 'csv', '/dev/null', 1) RETURNING id",
            owner,
        )
    finally:
        await conn.close()

    async def chunk(conn: asyncpg.Connection) -> None:
        # As the import worker writes a chunk: COPY the tasks, then the checkpoint row, whose key on the job
        # is what the account's deletion (cascading to the job) waits for.
        await conn.copy_records_to_table(
            "tasks", columns=("user_id", "title", "import_id"), records=[(owner, f"row {i}", job) for i in range(50)]
        )
        await conn.execute(
            "INSERT INTO import_chunks (job_id, seq, rows_consumed, rows_imported, rows_failed, progress)"
            " VALUES ($1, 0, 50, 50, 0, 1)",
            job,
        )

    assert await _deleted_while_writing(settings.database_url, alice.email, chunk) == 0

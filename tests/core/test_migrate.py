"""python -m service.migrate: ordered, recorded, locked, and refusing edited files."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from service.migrate import MIGRATIONS_DIR, MigrationError, migrate, verify
from tests.support import eventually, insert_account, recreate_database


@pytest.fixture
async def scratch_url(settings) -> str:
    url = settings.database_url + "_migrate"  # beside the run's own database, so parallel runs never share it
    await recreate_database(url)
    return url


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target)
    return target


async def test_applies_every_file_once_in_order(scratch_url, migrations):
    applied = await migrate(scratch_url, migrations)
    assert applied == sorted(p.stem for p in migrations.glob("*.sql"))
    assert await migrate(scratch_url, migrations) == []
    conn = await asyncpg.connect(scratch_url)
    try:
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == applied
        assert all(len(r["checksum"]) == 64 for r in rows)
        await verify(conn, migrations)
    finally:
        await conn.close()


async def test_concurrent_runs_apply_each_file_exactly_once(scratch_url, migrations):
    results = await asyncio.gather(*(migrate(scratch_url, migrations) for _ in range(3)))
    assert sorted(len(r) for r in results) == [0, 0, len(list(migrations.glob("*.sql")))]


async def test_an_edited_applied_file_is_refused(scratch_url, migrations):
    await migrate(scratch_url, migrations)
    first = sorted(migrations.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- sneaky edit\n")
    with pytest.raises(MigrationError, match="edited"):
        await migrate(scratch_url, migrations)
    conn = await asyncpg.connect(scratch_url)
    try:
        with pytest.raises(MigrationError, match="edited"):
            await verify(conn, migrations)
    finally:
        await conn.close()


async def test_a_failing_file_leaves_nothing_half_applied(scratch_url, migrations):
    (migrations / "9999_broken.sql").write_text("CREATE TABLE half (id int);\nSELECT * FROM no_such_table;\n")
    with pytest.raises(asyncpg.UndefinedTableError):
        await migrate(scratch_url, migrations)
    conn = await asyncpg.connect(scratch_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('half')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE version = '9999_broken'") == 0
        with pytest.raises(MigrationError, match="pending: 9999_broken"):
            await verify(conn, migrations)
    finally:
        await conn.close()


def test_badly_named_files_are_refused(migrations):
    from service.migrate import discover

    (migrations / "5_oops.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN"):
        discover(migrations)


NO_TRANSACTION_INDEX = """-- migrate: no-transaction
-- Statements run one by one, outside a transaction; each may be run again.
CREATE TABLE IF NOT EXISTS numbers (n int);
CREATE INDEX CONCURRENTLY IF NOT EXISTS numbers_n ON numbers (n);
"""


async def test_a_no_transaction_file_runs_statement_by_statement(scratch_url, migrations):
    (migrations / "9999_concurrently.sql").write_text(NO_TRANSACTION_INDEX)

    assert "9999_concurrently" in await migrate(scratch_url, migrations)

    conn = await asyncpg.connect(scratch_url)
    try:
        assert await conn.fetchval("SELECT indisvalid FROM pg_index WHERE indexrelid = 'numbers_n'::regclass")
        await verify(conn, migrations)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "statement",
    ["CREATE INDEX CONCURRENTLY numbers_n ON numbers (n);", "CREATE UNIQUE INDEX numbers_n ON numbers (n);"],
)
def test_a_no_transaction_index_that_could_not_be_built_again_is_refused(migrations, statement):
    from service.migrate import discover

    (migrations / "9999_concurrently.sql").write_text(f"-- migrate: no-transaction\n{statement}\n")
    with pytest.raises(MigrationError, match="IF NOT EXISTS"):
        discover(migrations)


async def _populated_before_the_index_migration(url: str, migrations: Path, tasks: int) -> None:
    """The database migrated up to 0009 with `tasks` tasks, the later migrations pending."""
    later = migrations.parent / "later"
    later.mkdir()
    for path in sorted(migrations.glob("*.sql")):
        if path.stem > "0009_task_words":
            path.rename(later / path.name)
    await migrate(url, migrations)
    await _populate(url, tasks)
    for path in later.iterdir():
        path.rename(migrations / path.name)


async def _populate(url: str, tasks: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        user_id = await insert_account(conn, "many@example.com")
        await conn.execute(
            "INSERT INTO tasks (user_id, title, description) SELECT $1, 'task ' || i, 'about the harbour'"
            " FROM generate_series(1, $2) AS i",
            user_id,
            tasks,
        )
    finally:
        await conn.close()


async def _wait_for_build(watcher: asyncpg.Connection, index: str) -> int:
    """The pid of the backend building `index` concurrently, once it waits for older transactions."""
    building = (
        "SELECT p.pid FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.index_relid"
        " WHERE c.relname = $1 AND p.phase LIKE 'waiting%'"
    )
    return await eventually(lambda: watcher.fetchval(building, index), 60, f"the build of {index} to wait")


async def test_index_migrations_let_writes_go_on_while_building_on_a_populated_table(scratch_url, migrations):
    await _populated_before_the_index_migration(scratch_url, migrations, 5_000)
    blocker, writer, watcher = [await asyncpg.connect(scratch_url) for _ in range(3)]
    try:
        # A transaction that wrote to tasks and stays open: a concurrent build waits for it to end...
        blocking = blocker.transaction()
        await blocking.start()
        await blocker.execute("UPDATE tasks SET title = 'harbour master' WHERE title = 'task 1'")
        migrating = asyncio.create_task(migrate(scratch_url, migrations))
        await _wait_for_build(watcher, "tasks_list_created")

        # ... and meanwhile other writes to tasks are not blocked.
        owner = await writer.fetchval("SELECT id FROM accounts")
        async with asyncio.timeout(30):
            await writer.execute("INSERT INTO tasks (user_id, title) VALUES ($1, 'harbour pilot')", owner)
            await writer.execute("UPDATE tasks SET priority = 1 WHERE title = 'task 2'")
            await writer.execute("DELETE FROM tasks WHERE title = 'task 3'")
        assert not migrating.done()
        await blocking.commit()
        async with asyncio.timeout(120):
            assert "0010_task_indexes" in await migrating

        # Every row written during the build is in the new indexes.
        await watcher.execute("SET enable_seqscan = off")
        titles = await watcher.fetch(
            "SELECT title FROM tasks WHERE user_id = $1"
            " AND to_tsvector('tasklane_words', title) @@ 'harbour:* & (master | pilot)'",
            owner,
        )
        assert sorted(r["title"] for r in titles) == ["harbour master", "harbour pilot"]
        assert not await watcher.fetchval(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'tasks'::regclass AND NOT indisvalid"
        )
    finally:
        for conn in (blocker, writer, watcher):
            await conn.close()


async def test_a_cancelled_concurrent_build_leaves_an_invalid_index_that_a_rerun_rebuilds(scratch_url, migrations):
    await _populated_before_the_index_migration(scratch_url, migrations, 2_000)
    blocker, watcher = [await asyncpg.connect(scratch_url) for _ in range(2)]
    try:
        blocking = blocker.transaction()
        await blocking.start()
        await blocker.execute("UPDATE tasks SET priority = 5 WHERE title = 'task 1'")
        migrating = asyncio.create_task(migrate(scratch_url, migrations))
        # The build of the first index has begun (its entry exists, not yet valid): cancel it, as a
        # deploy's timeout or an operator would.
        await watcher.execute("SELECT pg_cancel_backend($1)", await _wait_for_build(watcher, "tasks_list_created"))
        with pytest.raises(asyncpg.QueryCanceledError):
            await migrating
        await blocking.rollback()
        valid = "SELECT indisvalid FROM pg_index WHERE indexrelid = 'tasks_list_created'::regclass"
        assert await watcher.fetchval(valid) is False
        assert await watcher.fetchval("SELECT count(*) FROM schema_migrations WHERE version = '0010_task_indexes'") == 0

        assert "0010_task_indexes" in await migrate(scratch_url, migrations)

        assert await watcher.fetchval(valid) is True
        assert not await watcher.fetchval(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'tasks'::regclass AND NOT indisvalid"
        )
        await verify(watcher, migrations)
    finally:
        for conn in (blocker, watcher):
            await conn.close()

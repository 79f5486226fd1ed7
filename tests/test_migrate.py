"""python -m service.migrate: ordered, recorded, locked, and refusing edited files."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from service.migrate import MIGRATIONS_DIR, MigrationError, migrate, verify
from tests.support import recreate_database


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

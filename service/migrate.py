"""Apply `sql/migrations/NNNN_*.sql` in order: `python -m service.migrate` (the Procfile `release` step).

Each file runs in its own transaction and is recorded in `schema_migrations` with its SHA-256. A
session-level advisory lock serialises concurrent runs (two releases, or several containers starting
at once). A file edited after it was applied is refused, never silently skipped or re-run.

A file whose leading comments include the line `-- migrate: no-transaction` runs outside a transaction,
one statement at a time: the way to build or drop an index CONCURRENTLY, without blocking writes to a
table in use. Such a file may stop half-way (a crash, a cancel, a failed build) and is then run again
from its first statement, so each of its statements must be safe to repeat (`IF NOT EXISTS`, `IF
EXISTS`). A `CREATE INDEX CONCURRENTLY IF NOT EXISTS name` that an interrupted run left INVALID is
dropped and built again rather than skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import sqlparse

from service.config import get_settings
from service.db import SQL_DIR
from service.logs import setup_logging

log = logging.getLogger("tasklane.migrate")
MIGRATIONS_DIR = SQL_DIR / "migrations"
LOCK_KEY = int.from_bytes(b"tasklane", "big") >> 1  # any fixed bigint, shared by every instance
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
NO_TRANSACTION = "-- migrate: no-transaction"
LOCK_POLL_SECONDS = 0.2
_CREATE_INDEX = re.compile(r"^CREATE\s+(?:UNIQUE\s+)?INDEX\b(?P<rest>.*)", re.IGNORECASE | re.DOTALL)
_CONCURRENT_NAME = re.compile(r"^\s+CONCURRENTLY\s+IF\s+NOT\s+EXISTS\s+(?P<name>[a-z_][a-z0-9_]*)\s", re.IGNORECASE)


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text()

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def transactional(self) -> bool:
        for line in self.sql.splitlines():
            if not line.startswith("--"):
                break
            if line.strip().lower() == NO_TRANSACTION:
                return False
        return True

    def statements(self) -> list[tuple[str, str | None]]:
        """A no-transaction file's statements, each with the name of the index it builds concurrently
        (None for other statements). MigrationError for a statement that could not be run twice."""
        found = []
        for text in sqlparse.split(self.sql):
            bare = sqlparse.format(text, strip_comments=True).strip().rstrip(";").strip()
            if not bare:
                continue
            index = None
            create = _CREATE_INDEX.match(bare)
            if create:
                named = _CONCURRENT_NAME.match(create["rest"])
                if named is None:
                    raise MigrationError(
                        f"{self.path.name}: a no-transaction file builds indexes with "
                        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS <name> (it may be run again): {bare[:80]}"
                    )
                index = named["name"]
            found.append((bare, index))
        return found


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        if not _FILE.match(path.name):
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        migration = Migration(path.stem, path)
        if not migration.transactional:
            migration.statements()  # refuses a statement that could not be run twice, before any is run
        found.append(migration)
    numbers = [m.version[:4] for m in found]
    if len(set(numbers)) != len(numbers):
        raise MigrationError("two migration files share a number")
    return found


CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def _check_edits(applied: dict[str, str], migrations: list[Migration]) -> None:
    for m in migrations:
        if m.version in applied and applied[m.version] != m.checksum:
            raise MigrationError(f"{m.path.name} was edited after it was applied; add a new migration instead")


RECORD = "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)"
INVALID_INDEX = """
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname = $1 AND n.nspname = current_schema() AND NOT i.indisvalid
"""


async def _lock(conn: asyncpg.Connection) -> None:
    """Take the migration lock, polling rather than waiting inside a statement: a session blocked in
    pg_advisory_lock holds a snapshot, which a CREATE INDEX CONCURRENTLY run by the lock's holder would
    wait for (each waiting on the other)."""
    while True:
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK_KEY):
            return
        await asyncio.sleep(LOCK_POLL_SECONDS)


async def _apply(conn: asyncpg.Connection, m: Migration) -> None:
    if m.transactional:
        async with conn.transaction():
            await conn.execute(m.sql)
            await conn.execute(RECORD, m.version, m.checksum)
        return
    for statement, index in m.statements():
        if index is not None:
            invalid = await conn.fetchval(INVALID_INDEX, index)
            if invalid is not None:
                # Left by an interrupted build: IF NOT EXISTS would keep it, unusable, forever.
                log.warning("rebuilding an invalid index", extra={"version": m.version, "index": index})
                await conn.execute(f"DROP INDEX CONCURRENTLY {invalid}")
        await conn.execute(statement)
    await conn.execute(RECORD, m.version, m.checksum)


async def migrate(database_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; returns the versions applied by this call."""
    migrations = discover(directory)
    conn = await asyncpg.connect(database_url)
    try:
        await _lock(conn)
        try:
            await conn.execute(CREATE_TABLE)
            applied = dict(await conn.fetch("SELECT version, checksum FROM schema_migrations"))
            _check_edits(applied, migrations)
            done = []
            for m in migrations:
                if m.version in applied:
                    continue
                await _apply(conn, m)
                log.info("migration applied", extra={"version": m.version})
                done.append(m.version)
            return done
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
    finally:
        await conn.close()


async def verify(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> None:
    """Refuse to serve against a schema that is behind the code or whose files were edited."""
    migrations = discover(directory)
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied = dict(await conn.fetch("SELECT version, checksum FROM schema_migrations")) if exists else {}
    _check_edits(applied, migrations)
    missing = [m.version for m in migrations if m.version not in applied]
    if missing:
        raise MigrationError(f"database is not migrated (pending: {', '.join(missing)}); run python -m service.migrate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    settings = get_settings()
    setup_logging(settings.log_level)
    try:
        done = asyncio.run(migrate(settings.database_url))
    except MigrationError as exc:
        log.error("migration refused: %s", exc)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        log.error("cannot migrate: %s", exc)
        return 1
    log.info("database is up to date", extra={"applied": done})
    return 0


if __name__ == "__main__":
    sys.exit(main())

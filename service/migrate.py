"""Apply `sql/migrations/NNNN_*.sql` in order: `python -m service.migrate` (the Procfile `release` step).

Each file runs in its own transaction and is recorded in `schema_migrations` with its SHA-256. A
session-level advisory lock serialises concurrent runs (two releases, or several containers starting
at once). A file edited after it was applied is refused, never silently skipped or re-run.
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

from service.config import get_settings
from service.db import SQL_DIR
from service.logs import setup_logging

log = logging.getLogger("tasklane.migrate")
MIGRATIONS_DIR = SQL_DIR / "migrations"
LOCK_KEY = int.from_bytes(b"tasklane", "big") >> 1  # any fixed bigint, shared by every instance
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


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


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        if not _FILE.match(path.name):
            raise MigrationError(f"{path.name}: migration files are named NNNN_lower_snake.sql")
        found.append(Migration(path.stem, path))
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


async def migrate(database_url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations; returns the versions applied by this call."""
    migrations = discover(directory)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        try:
            await conn.execute(CREATE_TABLE)
            applied = dict(await conn.fetch("SELECT version, checksum FROM schema_migrations"))
            _check_edits(applied, migrations)
            done = []
            for m in migrations:
                if m.version in applied:
                    continue
                async with conn.transaction():
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", m.version, m.checksum
                    )
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

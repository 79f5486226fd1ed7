"""What a task row costs PostgreSQL, before and after issue 16 in the same run: the same rows COPY'd (binary,
10,000-row transactions, as the import worker writes them) into a copy of the tasks table with all, none
or one of its indexes and constraints, as migrated up to 0008 (before) and as migrated now (after). The
parts are read from each database's catalog, so the figures follow the migrations.

Cost is the CPU time of the PostgreSQL backend doing the COPY (/proc/<pid>/schedstat, when the server
runs on this machine; its background writers are not counted), per row, with the GIN indexes' pending
lists merged at the end (work a fast-update GIN index defers, counted here rather than left to a later
insert or VACUUM). Wall time is printed too. Baseline: the bare heap (the table's columns, defaults and
NOT NULLs). "as migrated" is measured --rounds times per schema, alternating, and the median kept. Each
part's figure is what it adds per row on its own. Last, the database time of deleting the import that
created the rows (it was 21.6 s for 200,000 tasks while a foreign key nulled their import_id).

Rows are the import benchmark's ("Task number 7", "Description of task 7"), or with --text seeded the
list benchmark's (seed.py: titles of 3-7 words, 70% with a description of 5-40 words; 136 characters a
task on average), as the cost of a word or trigram index grows with the text.

Run: python -m tests.perf.bench_task_writes [--rows 200000] [--rounds 3] [--no-parts] [--text seeded]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg

from service.ids import uuid7_batch
from tests.perf.bench_readers import _row
from tests.perf.common import BEFORE_16, Figure, fresh_database, print_table
from tests.perf.seed import _rows as seed_rows
from tests.support import drop_database

CHUNK = 10_000
TABLE = "bench_tasks"
COLUMNS = ("id", "user_id", "title", "description", "status", "priority", "due_date", "category_id", "import_id")
GOAL = "<= 0.5 x before"


async def _parts(conn: asyncpg.Connection) -> dict[str, str]:
    """Each index and constraint of tasks as DDL for TABLE; the CHECKs count as one part."""
    parts: dict[str, str] = {}
    for r in await conn.fetch(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) AS ddl FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'tasks'::regclass AND NOT i.indisprimary"
    ):
        parts[r["relname"]] = re.sub(r"^CREATE (UNIQUE )?INDEX \S+ ON \S+", rf"CREATE \1INDEX ON {TABLE}", r["ddl"])
    checks = []
    for r in await conn.fetch(
        "SELECT conname, contype::text AS contype, pg_get_constraintdef(oid) AS ddl FROM pg_constraint"
        " WHERE conrelid = 'tasks'::regclass ORDER BY conname"
    ):
        if r["contype"] == "c":
            checks.append(f"ADD {r['ddl']}")
        elif r["contype"] == "p":
            parts[r["conname"]] = f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)"
        else:
            parts[r["conname"]] = f"ALTER TABLE {TABLE} ADD {r['ddl']}"
    parts["checks"] = f"ALTER TABLE {TABLE} " + ", ".join(checks)
    return parts


_EMPTY_JOB = (
    "INSERT INTO import_jobs (id, user_id, filename, kind, stored_path, size_bytes)"
    " VALUES (gen_random_uuid(), $1, 'empty.csv', 'csv', '/dev/null', 0) RETURNING id"
)


def _texts(kind: str, rows: int) -> list[tuple[str, str | None]]:
    """(title, description) of each row: the import benchmark's short ones, or seed.py's."""
    if kind == "short":
        return [_row(i)[:2] for i in range(rows)]
    return [(r[2], r[3]) for r in seed_rows(uuid.UUID(int=0), rows, [], random.Random(1))]


async def _records(conn: asyncpg.Connection, rows: int, text: str) -> list[tuple[Any, ...]]:
    user_id = await conn.fetchval(
        "INSERT INTO accounts (email, password_hash, is_active) VALUES ('writes@example.com', 'x', true) RETURNING id"
    )
    job_id = await conn.fetchval(_EMPTY_JOB, user_id)
    categories = {
        r["name"]: r["id"]
        for r in await conn.fetch(
            "INSERT INTO categories (user_id, name) SELECT $1, 'cat' || n FROM generate_series(0, 9) n"
            " RETURNING id, name",
            user_id,
        )
    }
    return [
        (task_id, user_id, title, description, s, p, due, categories[c], job_id)
        for task_id, (_, _, s, p, due, c), (title, description) in zip(
            uuid7_batch(rows), map(_row, range(rows)), _texts(text, rows), strict=True
        )
    ]


async def _copy(conn: asyncpg.Connection, table: str, records: list[tuple[Any, ...]]) -> None:
    """As the import worker writes: binary COPY, one transaction per CHUNK rows."""
    for start in range(0, len(records), CHUNK):
        async with conn.transaction():
            await conn.copy_records_to_table(table, columns=COLUMNS, records=records[start : start + CHUNK])


def _cpu_seconds(pid: int) -> float | None:
    """CPU time so far of a process of this machine (None when the server is elsewhere)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


async def _copy_cost(
    conn: asyncpg.Connection, records: list[tuple[Any, ...]], ddl: Sequence[str], built_after: Sequence[str] = ()
) -> tuple[float | None, float]:
    """(backend CPU seconds, wall seconds) of a COPY into a new table that has `ddl`'s parts, then of
    building `built_after`'s, and of merging the pending lists of its GIN indexes."""
    await conn.execute(f"DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (LIKE tasks INCLUDING DEFAULTS)")
    for statement in ddl:
        await conn.execute(statement)
    await conn.execute("CHECKPOINT")  # each run starts without the previous one's dirty pages
    pid = conn.get_server_pid()
    cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
    await _copy(conn, TABLE, records)
    for statement in built_after:
        await conn.execute(statement)
    await conn.execute(
        "SELECT gin_clean_pending_list(i.indexrelid::regclass) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_am a ON a.oid = c.relam WHERE i.indrelid = $1::regclass AND a.amname = 'gin'",
        TABLE,
    )
    wall, cpu1 = time.perf_counter() - t0, _cpu_seconds(pid)
    return (cpu1 - cpu0 if cpu0 is not None and cpu1 is not None else None), wall


async def _delete_seconds(conn: asyncpg.Connection, records: list[tuple[Any, ...]]) -> tuple[float, float]:
    """Deleting the records' import job once they are in the real tasks table, and (the baseline) deleting
    a job that created no task: what DELETE /imports/{id} spends in the database besides the row."""
    await _copy(conn, "tasks", records)
    user_id, job_id = records[0][1], records[0][-1]
    timings = []
    for job in (job_id, await conn.fetchval(_EMPTY_JOB, user_id)):
        t0 = time.perf_counter()
        await conn.execute("DELETE FROM import_jobs WHERE id = $1", job)
        timings.append(time.perf_counter() - t0)
    return timings[0], timings[1]


class Schema:
    """One schema's database, its parts, and its costs per row."""

    def __init__(self, name: str, url: str, conn: asyncpg.Connection, parts: dict[str, str]) -> None:
        self.name, self.url, self.conn, self.parts = name, url, conn, parts
        self.migrated: list[tuple[float | None, float]] = []

    def per_row(self, rows: int, wall: bool = False) -> float:
        values = [w if wall or c is None else c for c, w in self.migrated]
        return statistics.median(values) * 1e6 / rows


async def measure(rows: int, rounds: int, itemise: bool, text: str = "short") -> list[Figure]:
    schemas: list[Schema] = []
    for name, until in (("before", BEFORE_16), ("after", None)):
        url = await fresh_database(f"tasklane_bench_writes_{name}", until=until)
        conn = await asyncpg.connect(url)
        schemas.append(Schema(name, url, conn, await _parts(conn)))
    before, after = schemas
    try:
        records = await _records(after.conn, rows, text)
        records_before = await _records(before.conn, rows, text)
        by_schema = {"before": records_before, "after": records}
        bare = [await _copy_cost(s.conn, by_schema[s.name], []) for s in schemas]
        for _ in range(rounds):
            for s in schemas:
                s.migrated.append(await _copy_cost(s.conn, by_schema[s.name], list(s.parts.values())))
        # Sorting the rows once per index is the fastest way PostgreSQL has to index them: a bound for any
        # way of importing into a table that keeps these parts.
        built = await _copy_cost(after.conn, records, [], list(after.parts.values()))
        alone: dict[str, dict[str, float]] = {}
        if itemise:
            for s in schemas:
                base_cpu, base_wall = bare[schemas.index(s)]
                for part, ddl in s.parts.items():
                    cpu, wall = await _copy_cost(s.conn, by_schema[s.name], [ddl])
                    extra = (cpu - base_cpu) if cpu is not None and base_cpu is not None else wall - base_wall
                    alone.setdefault(s.name, {})[part] = extra * 1e6 / rows
        await after.conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        deleted, empty = await _delete_seconds(after.conn, records)
    finally:
        for s in schemas:
            await s.conn.close()
            await drop_database(s.url)
    unit = "us CPU/row" if bare[0][0] is not None else "us/row (wall)"
    bare_cost = (bare[1][0] if bare[1][0] is not None else bare[1][1]) * 1e6 / rows
    figures = [
        Figure(f"COPY into tasks as migrated, after ({len(after.parts)} parts) vs before ({len(before.parts)})",
               after.per_row(rows), before.per_row(rows), GOAL, unit),
        Figure("COPY into tasks as migrated, after vs before, wall time", after.per_row(rows, wall=True),
               before.per_row(rows, wall=True), "-", "us/row"),
        Figure("COPY into the bare heap", bare_cost, None, "-", unit),
        Figure("COPY into the bare heap, then build every part at once (after)",
               (built[0] if built[0] is not None else built[1]) * 1e6 / rows, None, "-", unit),
        Figure(f"DELETE of an import that created {rows:,} tasks", deleted * 1e3, empty * 1e3, "-", "ms"),
    ]  # fmt: skip
    for name, costs in alone.items():
        for part, cost in sorted(costs.items(), key=lambda item: -item[1]):
            figures.append(Figure(f"per row added by {part} ({name})", cost, None, "-", unit))
    return figures


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="runs of each schema as migrated (median kept)")
    parser.add_argument("--no-parts", action="store_true", help="skip the cost of each part on its own")
    parser.add_argument(
        "--text", choices=("short", "seeded"), default="short", help="the rows' titles and descriptions"
    )
    args = parser.parse_args(argv)
    figures = asyncio.run(measure(args.rows, args.rounds, not args.no_parts, args.text))
    print_table(
        f"Task writes, {args.rows:,} rows of {args.text} text (baseline: the schema before issue 16, up to 0008)",
        figures,
    )
    return [f.row() for f in figures]


if __name__ == "__main__":
    main()

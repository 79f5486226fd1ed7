"""Where a bulk import's database time goes: the same task rows COPY'd (binary, 10,000-row transactions,
as the import worker writes them) into a copy of the tasks table with none, one or all of its indexes and
constraints. The parts are read from the catalog, so the figures follow the migrations.

Baseline: the bare heap (the table's columns, defaults and NOT NULLs, nothing else). Each part's figure
is what it adds per row on its own; "as migrated" has them all. One connection, an empty table per run.
Last, the database time of deleting the import that created the rows, against deleting one that created
none (it was 21.6 s for 200,000 tasks while a foreign key nulled their import_id).

Run: python -m tests.perf.bench_task_writes   (BENCH_WRITE_ROWS, default 200,000)
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from service.ids import uuid7_batch
from tests.perf.bench_readers import _row
from tests.perf.common import Figure, fresh_database, print_table

ROWS = int(os.environ.get("BENCH_WRITE_ROWS", "200000"))
CHUNK = 10_000
TABLE = "bench_tasks"
COLUMNS = ("id", "user_id", "title", "description", "status", "priority", "due_date", "category_id", "import_id")
# The fewest parts that keep every sort of GET /tasks on an index (issue 3) and tasks tied to their owner.
ESSENTIAL = ("tasks_pkey", "tasks_user_id_fkey", "tasks_user_created", "tasks_user_due", "tasks_user_priority")


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
        else:
            parts[r["conname"]] = f"ALTER TABLE {TABLE} ADD {r['ddl']}"
    parts["checks"] = f"ALTER TABLE {TABLE} " + ", ".join(checks)
    return parts


_EMPTY_JOB = (
    "INSERT INTO import_jobs (id, user_id, filename, kind, stored_path, size_bytes)"
    " VALUES (gen_random_uuid(), $1, 'empty.csv', 'csv', '/dev/null', 0) RETURNING id"
)


async def _records(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
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
        (task_id, user_id, t, d, s, p, due, categories[c], job_id)
        for task_id, (t, d, s, p, due, c) in zip(uuid7_batch(ROWS), map(_row, range(ROWS)), strict=True)
    ]


async def _copy(conn: asyncpg.Connection, table: str, records: list[tuple[Any, ...]]) -> None:
    """As the import worker writes: binary COPY, one transaction per CHUNK rows."""
    for start in range(0, len(records), CHUNK):
        async with conn.transaction():
            await conn.copy_records_to_table(table, columns=COLUMNS, records=records[start : start + CHUNK])


async def _copy_seconds(
    conn: asyncpg.Connection, records: list[tuple[Any, ...]], ddl: Sequence[str], built_after: Sequence[str] = ()
) -> float:
    """COPY into a new table that has `ddl`'s parts, then build `built_after`'s (timed too)."""
    await conn.execute(f"DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (LIKE tasks INCLUDING DEFAULTS)")
    for statement in ddl:
        await conn.execute(statement)
    await conn.execute("CHECKPOINT")  # each run starts without the previous one's dirty pages
    t0 = time.perf_counter()
    await _copy(conn, TABLE, records)
    for statement in built_after:
        await conn.execute(statement)
    return time.perf_counter() - t0


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


async def measure() -> list[Figure]:
    conn = await asyncpg.connect(await fresh_database("tasklane_bench_writes"))
    try:
        parts = await _parts(conn)
        parts["tasks_pkey"] = f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id)"
        records = await _records(conn)
        bare = await _copy_seconds(conn, records, [])
        every = await _copy_seconds(conn, records, list(parts.values()))
        # Sorting the rows once per index is the fastest way PostgreSQL has to index them: no way of
        # importing into a table that keeps these parts can beat this (a staging table attached as a
        # partition once indexed would come closest).
        built = await _copy_seconds(conn, records, [], list(parts.values()))
        essential = await _copy_seconds(conn, records, [parts[name] for name in ESSENTIAL])
        alone = {name: await _copy_seconds(conn, records, [ddl]) for name, ddl in parts.items()}
        await conn.execute(f"DROP TABLE {TABLE}")
        deleted, empty = await _delete_seconds(conn, records)
    finally:
        await conn.close()
    us = 1e6 / ROWS
    figures = [
        Figure(f"COPY into tasks as migrated ({len(parts)} parts)", ROWS / every, ROWS / bare, "-", "rows/s"),
        Figure("COPY into the bare heap, then build every part at once", ROWS / built, ROWS / bare, "-", "rows/s"),
        Figure("COPY into tasks with only " + ", ".join(ESSENTIAL), ROWS / essential, ROWS / bare, "-", "rows/s"),
        Figure(f"DELETE of an import that created {ROWS:,} tasks", deleted * 1e3, empty * 1e3, "-", "ms"),
    ]
    for name, seconds in sorted(alone.items(), key=lambda item: -item[1]):
        figures.append(Figure(f"per row added by {name}", (seconds - bare) * us, None, "-", "us"))
    return figures


def main() -> list[dict[str, Any]]:
    figures = asyncio.run(measure())
    print_table(f"Task writes, {ROWS:,} rows (baseline: the same COPY into the bare heap)", figures)
    return [f.row() for f in figures]


if __name__ == "__main__":
    main()

"""The import worker's own CPU per row, by stage, on the 1,000,000-row CSV of bench_readers.

PostgreSQL's work is left out: what is measured is the CPU time of this process (time.process_time), so
the figures hold on a shared machine where wall time does not. Stages, each run alone over the file:

- parse: csv.reader over the decoded file (the rows are only counted);
- read: `reader.chunks()`, parse plus the per-row checks (check = read - parse);
- records: what the chunk writer builds from a chunk (Totals.after, ids, the records for COPY);
- encode: asyncpg's COPY of those records into a TEMP table with the tasks columns and no index or
  constraint, this process's CPU only (the encoding and the protocol).

Run: python -m tests.perf.import_cpu [--rows 1000000] [--rounds 2] [--stages parse read records encode]
(encode connects to TEST_DATABASE_URL's server, database postgres, and writes only a TEMP table)
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
from asyncpg.pgproto.pgproto import UUID as PgUUID

from service.imports import chunks as chunk_writer
from service.imports.chunks import Totals
from service.imports.files import open_reader
from service.imports.files.csv_reader import FIELD_LIMIT
from tests.perf.bench_readers import csv_fixture

CHUNK_ROWS = 10_000
TEMP_TABLE = """CREATE TEMP TABLE tasks (id uuid, user_id uuid, title text, description text, status text,
    priority smallint, due_date date, category_id uuid, import_id uuid)"""


def _cpu(work: Callable[..., Any], *args: Any) -> float:
    t0 = time.process_time()
    work(*args)
    return time.process_time() - t0


def parse(path: str) -> None:
    csv.field_size_limit(FIELD_LIMIT)
    with open(path, encoding="utf-8", newline="") as f:
        for _ in csv.reader(f):
            pass


def read(path: str) -> None:
    with open_reader(path, "csv") as reader:
        for _ in reader.chunks(size=CHUNK_ROWS):
            pass


def chunks_of(path: str) -> list[Any]:
    with open_reader(path, "csv") as reader:
        return list(reader.chunks(size=CHUNK_ROWS))


def _categories(chunks: list[Any]) -> dict[str, PgUUID]:
    """{name.lower(): id}, as tasks.category_ids answers, for every category of the file."""
    names = set().union(*map(chunk_writer.category_names, chunks))
    return {name.lower(): PgUUID(uuid.uuid4().bytes) for name in names}


def records(chunks: list[Any], found: dict[str, PgUUID]) -> Iterator[list[tuple[Any, ...]]]:
    """What the chunk writer does per chunk besides SQL: Totals.after, the chunk's category names and their
    ids (found: what tasks.category_ids would answer), the records for copy_records_to_table."""
    job = {"id": PgUUID(uuid.uuid4().bytes), "user_id": PgUUID(uuid.uuid4().bytes), "dry_run": False}
    totals = Totals()
    for chunk in chunks:
        totals = totals.after(chunk, False)
        names = chunk_writer.category_names(chunk)
        yield chunk_writer.task_records(job, chunk, {name: found[name.lower()] for name in names})


async def encode(batches: Iterator[list[tuple[Any, ...]]]) -> float:
    # The server's maintenance database: a TEMP table touches nothing in it, and no test database is needed.
    server = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/x").rsplit("/", 1)[0]
    conn = await asyncpg.connect(f"{server}/postgres")
    try:
        await conn.execute(TEMP_TABLE)
        cpu = 0.0
        for batch in batches:  # the records are built untimed here
            t0 = time.process_time()
            await conn.copy_records_to_table("tasks", columns=chunk_writer.TASK_COLUMNS, records=batch)
            cpu += time.process_time() - t0
            await conn.execute("TRUNCATE tasks")
        return cpu
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--stages", nargs="+", default=["parse", "read", "records", "encode"])
    args = parser.parse_args(argv)
    path = str(csv_fixture(args.rows))
    per_row: dict[str, float] = {}
    for _ in range(args.rounds):
        found: dict[str, float] = {}
        if "parse" in args.stages:
            found["parse"] = _cpu(parse, path)
        if "read" in args.stages:
            found["read"] = _cpu(read, path)
        if {"records", "encode"} & set(args.stages):
            chunks = chunks_of(path)
            categories = _categories(chunks)
            # The worker holds a chunk or two, not the file's million rows: those are kept out of the
            # garbage collector's sight, which would otherwise walk them again and again.
            gc.collect()
            gc.freeze()
            found["records"] = _cpu(deque, records(chunks, categories), 0)
            if "encode" in args.stages:
                found["encode"] = asyncio.run(encode(records(chunks, categories)))
            del chunks
            gc.unfreeze()
        for stage, seconds in found.items():  # the best round counts: other work only ever adds CPU
            per_row[stage] = min(per_row.get(stage, float("inf")), seconds * 1e6 / args.rows)
    if "parse" in per_row and "read" in per_row:
        per_row["check"] = per_row["read"] - per_row["parse"]
    print(", ".join(f"{stage} {us:.2f}" for stage, us in per_row.items()), "µs/row (CPU)", flush=True)
    return per_row


if __name__ == "__main__":
    main()

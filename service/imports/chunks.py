"""One chunk of an import: its totals, and the transaction that writes it with its checkpoint.

Crash safety comes from one rule: a chunk's tasks, its row errors and its checkpoint row commit in one
transaction. A redelivered message (killed worker, SIGTERM, broker restart) claims the job again and
resumes after the last committed chunk, so no row is lost or imported twice; the checkpoint's primary
key stops two workers that both believe they own a job from committing the same chunk.

Chunks are written by several transactions at once, on as many connections (see pipeline.py), yet
commits stay in file order, so what is committed is always a prefix of the file: a chunk's transaction
does all its writes, then waits for the previous chunk's commit before its own (and rolls back if that
one failed). Finding or creating categories is the one step that takes locks another chunk may need, so
that step also runs in file order: a chunk only ever waits for an earlier one, never the reverse, and
two chunks cannot deadlock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any
from uuid import UUID

import asyncpg

from service.context import Context
from service.db import Queries, run
from service.ids import uuid7_batch
from service.imports.files import VALID_COLUMNS, Chunk
from service.tasks import service as tasks

Q = Queries("imports")
CATEGORY = VALID_COLUMNS.index("category")
MAX_ROW_WARNINGS = 20  # row warnings named one by one in the job's warnings; the rest are counted
TASK_COLUMNS = ("id", "user_id", "title", "description", "status", "priority", "due_date", "category_id", "import_id")
ERROR_COLUMNS = ("job_id", "row_number", "seq", "column_name", "message", "value", "raw")


def storable(value: Any) -> Any:
    """Text from a file as PostgreSQL can keep it (text and jsonb refuse U+0000): NUL shown as U+FFFD. Only
    a workbook brings one (an `_x0000_` escape in an .xlsx cell, a NUL in an .xls string): CSV files with
    NUL bytes are refused whole. Lists are mapped item by item; anything else passes unchanged."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, list):
        return [storable(item) for item in value]
    return value


class LeaseLost(Exception):
    """Another worker owns the job now, or it was deleted: stop without touching it."""


class CancelRequested(Exception):
    """The user asked the job to stop: it ends 'cancelled' at this chunk boundary."""


@dataclass(frozen=True)
class Totals:
    """A job's counters once a chunk has committed: what its checkpoint row holds."""

    seq: int = 0
    rows_processed: int = 0
    rows_imported: int = 0
    rows_failed: int = 0
    progress: float = 0.0
    rows_skipped: int = 0  # blank rows, and rows a format says are not tasks (Todoist's notes, sections)
    rows_warned: int = 0  # rows imported with a warning (a Todoist date in words: no due date)
    row_warnings: tuple[str, ...] = ()  # the first MAX_ROW_WARNINGS of them, as the job will list them

    def after(self, chunk: Chunk, dry_run: bool) -> Totals:
        """The totals once `chunk` is committed too."""
        warned = sorted({w.row for w in chunk.warnings})
        room = MAX_ROW_WARNINGS - len(self.row_warnings)
        notes = [f"Row {w.row}: {w.message}" for w in chunk.warnings[:room]] if room > 0 else []
        return Totals(
            seq=self.seq + 1,
            rows_processed=chunk.rows_processed,
            rows_imported=self.rows_imported + (0 if dry_run else len(chunk.valid)),
            rows_failed=self.rows_failed + chunk.failed,
            progress=chunk.progress,
            rows_skipped=self.rows_skipped + chunk.skipped,
            rows_warned=self.rows_warned + len(warned),
            row_warnings=(*self.row_warnings, *notes),
        )

    def closing_warnings(self) -> list[str]:
        """What the job's warnings gain when it ends: the rows read leniently, or that there were no rows."""
        warnings = list(self.row_warnings)
        if self.rows_warned > len(self.row_warnings):
            warnings.append(f"{self.rows_warned - len(self.row_warnings)} more rows were imported with a warning")
        if self.rows_processed == self.rows_skipped:
            warnings.append("The file has a header row but no data rows: nothing was imported")
        return warnings

    def counters(self) -> dict[str, Any]:
        return {
            "rows_processed": self.rows_processed,
            "rows_imported": self.rows_imported,
            "rows_failed": self.rows_failed,
        }


async def settle(writing: deque[tuple[asyncio.Task[None], Totals]], totals: Totals) -> Totals:
    """Waits for the chunks still being written, in order; the totals once those that could commit did.
    After a cancelled chunk the later ones fail as well (each waits for the one before it)."""
    while writing:
        task, planned = writing.popleft()
        try:
            await task
        except CancelRequested:
            break
        totals = planned
    await asyncio.gather(*(task for task, _ in writing), return_exceptions=True)
    writing.clear()
    return totals


async def commit_chunk(
    ctx: Context,
    job: asyncpg.Record,
    lease: UUID,
    checkpoint: Totals,
    chunk: Chunk,
    previous: asyncio.Task[None] | None,
    categories_before: asyncio.Future[None] | None,
    categories_done: asyncio.Future[None],
) -> None:
    """Writes one chunk and its checkpoint in one transaction, committed only after `previous` (the
    chunk before it) committed; rolled back, with the same exception, if that one failed."""
    job_id, user_id = job["id"], job["user_id"]
    try:
        async with ctx.db.transaction(), ctx.db.connection() as conn:
            # A chunk lost to a database crash is re-done from the checkpoint it would have advanced, so
            # its commit need not wait for the WAL flush.
            await conn.execute("SET LOCAL synchronous_commit = off")
            await guard(conn, job_id, lease)
            categories: dict[str, UUID] = {}
            if not job["dry_run"]:
                names = category_names(chunk)
                if categories_before is not None:
                    await categories_before
                if names:
                    found = await tasks.category_ids(conn, user_id, names)
                    categories = {name: found[name.lower()] for name in names}
            if not categories_done.done():
                categories_done.set_result(None)
            try:
                await _write(conn, job, checkpoint, chunk, categories)
            except asyncpg.ForeignKeyViolationError as exc:
                # The job (or its account) was deleted since the guard read it.
                raise LeaseLost(f"job deleted ({exc.constraint_name})") from None
            except asyncpg.UniqueViolationError:
                raise LeaseLost(f"chunk {checkpoint.seq} already committed by another worker") from None
            if previous is not None:
                await previous
                # Again now that the chunk before has committed: a cancel asked meanwhile stops the job
                # at this boundary, as if the chunks had been written one at a time.
                await guard(conn, job_id, lease)
    finally:
        # Whatever happened, the next chunk may go on (and will fail on this one's outcome if need be).
        if not categories_done.done():
            categories_done.set_result(None)


async def _write(
    conn: asyncpg.Connection, job: asyncpg.Record, checkpoint: Totals, chunk: Chunk, categories: dict[str, UUID]
) -> None:
    """A chunk's tasks, its row errors and its checkpoint row (whose key makes a chunk commit once)."""
    job_id = job["id"]
    if chunk.valid and not job["dry_run"]:
        await conn.copy_records_to_table("tasks", columns=TASK_COLUMNS, records=task_records(job, chunk, categories))
    if chunk.errors:
        await conn.copy_records_to_table("import_errors", columns=ERROR_COLUMNS, records=_error_records(job_id, chunk))
    row = {
        "job_id": job_id,
        "seq": checkpoint.seq,
        "rows_processed": checkpoint.rows_processed,
        "rows_imported": checkpoint.rows_imported,
        "rows_failed": checkpoint.rows_failed,
        "progress": checkpoint.progress,
        "rows_skipped": checkpoint.rows_skipped,
        "rows_warned": checkpoint.rows_warned,
        "row_warnings": storable(list(checkpoint.row_warnings)),
    }
    await run(conn, "execute", Q.insert_chunk, row)


def category_names(chunk: Chunk) -> set[str]:
    """The categories the chunk's valid rows name, as written (a set made in C: this runs on every row)."""
    names = set(map(itemgetter(CATEGORY), chunk.valid))
    names.discard(None)  # type: ignore[arg-type]
    names.discard("")
    return names


def task_records(job: Mapping[str, Any], chunk: Chunk, categories: dict[str, UUID]) -> list[tuple[Any, ...]]:
    """The chunk's valid rows as tasks rows, in TASK_COLUMNS order; `categories` maps each of the chunk's
    category_names to its id (keyed as written, so no row needs .lower() again)."""
    job_id, user_id = job["id"], job["user_id"]
    ids = uuid7_batch(len(chunk.valid))
    category_id = categories.get  # None for a row without a category
    return [
        (task_id, user_id, t, d, st, p, due, category_id(c), job_id)  # type: ignore[arg-type]
        for task_id, (t, d, st, p, due, c, _row) in zip(ids, chunk.valid, strict=True)
    ]


async def guard(conn: asyncpg.Connection, job_id: UUID, lease: UUID) -> None:
    """LeaseLost unless the job is still this worker's; CancelRequested when a cancel was asked."""
    check_guard(await run(conn, "fetchrow", Q.chunk_guard, {"id": job_id, "lease_id": lease}))


def check_guard(row: asyncpg.Record | None) -> None:
    """What a chunk-guard row says: LeaseLost, CancelRequested, or (nothing raised) go on."""
    if row is None or not row["owned"]:
        raise LeaseLost("deleted" if row is None else "taken over by another worker")
    if row["cancel_requested"]:
        raise CancelRequested


def _error_records(job_id: UUID, chunk: Chunk) -> list[tuple[Any, ...]]:
    records = []
    seq_by_row: dict[int, int] = {}
    for e in chunk.errors:
        seq = seq_by_row.get(e.row, 0)
        seq_by_row[e.row] = seq + 1
        raw = storable(list(e.raw)) if seq == 0 else None
        records.append((job_id, e.row, seq, e.column, storable(e.message), storable(e.value), raw))
    return records

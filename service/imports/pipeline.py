"""The import worker's loop: read the file in chunks, commit each chunk with its checkpoint, finish.

Crash safety comes from one rule: a chunk's tasks, its row errors and its checkpoint row commit in one
transaction. A redelivered message (killed worker, SIGTERM, broker restart) claims the job again and
resumes after the last committed chunk, so no row is lost or imported twice; the checkpoint's primary
key stops two workers that both believe they own a job from committing the same chunk.

Parsing runs in a thread, one chunk ahead of the database: the event loop stays free for heartbeats
and other actors, and reading overlaps with COPY.

A stopping worker (`stopping`, set on SIGTERM) hands its job back at once: the chunks being written
commit (or roll back), the job row is released and a message sent for another worker, which resumes
after the last committed chunk. It does not wait for the reader either (opening a big workbook takes
seconds): reading runs in daemon threads, which never hold up the process's exit.

Chunks are written by CHUNKS_IN_FLIGHT transactions at once, on as many connections: the tasks table's
indexes make PostgreSQL the bottleneck (one backend busy, the worker nearly idle), and a second backend
uses the second core. Commits stay in file order, so what is committed is always a prefix of the file:
a chunk's transaction does all its writes, then waits for the previous chunk's commit before its own
(and rolls back if that one failed). Finding or creating categories is the one step that takes locks
another chunk may need, so that step also runs in file order: a chunk only ever waits for an earlier
one, never the reverse, and two chunks cannot deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from service import metrics
from service.context import Context
from service.db import Queries, run
from service.ids import uuid7_batch
from service.imports.files import VALID_COLUMNS, ImportFileError, Options, UnreadableFile, open_reader
from service.imports.service import announce_end, process_job, remove_upload
from service.logs import request_id_var
from service.messages import Message
from service.storage import LocalCopy, StoreUnavailable, scratch_dir
from service.tasks import service as tasks

log = logging.getLogger("tasklane.imports")
T = TypeVar("T")
Q = Queries("imports")
PROGRESS_EVERY = 1.0  # seconds between writes of the job row's counters
HEARTBEAT_EVERY = 5.0
STORE_BACKOFF_FIRST, STORE_BACKOFF_MAX = 1.0, 30.0  # seconds between tries while the upload store is away
CHUNKS_IN_FLIGHT = 2  # transactions writing chunks at once (one per core of a small database server)
STOP_POLL = 0.1  # seconds between looks at `stopping` while the reader works
CATEGORY = VALID_COLUMNS.index("category")
MAX_ROW_WARNINGS = 20  # row warnings named one by one in the job's warnings; the rest are counted
TASK_COLUMNS = ("id", "user_id", "title", "description", "status", "priority", "due_date", "category_id", "import_id")
ERROR_COLUMNS = ("job_id", "row_number", "seq", "column_name", "message", "value", "raw")

# Set by the worker when it is asked to stop: a job in progress then hands itself back instead of holding
# the shutdown for the rest of the file.
stopping = threading.Event()


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
    pass


@dataclass(frozen=True)
class Totals:
    seq: int = 0
    rows_consumed: int = 0
    rows_imported: int = 0
    rows_failed: int = 0
    progress: float = 0.0
    rows_skipped: int = 0  # blank rows, and rows a format says are not tasks (Todoist's notes, sections)
    rows_warned: int = 0  # rows imported with a warning (a Todoist date in words: no due date)
    row_warnings: tuple[str, ...] = ()  # the first MAX_ROW_WARNINGS of them, as the job will list them

    def after(self, chunk: Any, dry_run: bool) -> Totals:
        """The totals once `chunk` is committed too."""
        warned = sorted({w.row for w in chunk.warnings})
        room = MAX_ROW_WARNINGS - len(self.row_warnings)
        notes = [f"Row {w.row}: {w.message}" for w in chunk.warnings[:room]] if room > 0 else []
        return Totals(
            seq=self.seq + 1,
            rows_consumed=chunk.rows_consumed,
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
        if self.rows_consumed == self.rows_skipped:
            warnings.append("The file has a header row but no data rows: nothing was imported")
        return warnings

    def counters(self) -> dict[str, Any]:
        return {
            "rows_processed": self.rows_consumed,
            "rows_imported": self.rows_imported,
            "rows_failed": self.rows_failed,
        }


async def run_job(ctx: Context, job_id: UUID) -> str:
    """Process one import job; returns what happened. Safe to call any number of times for one job."""
    s = ctx.settings
    if stopping.is_set():
        # A worker on its way out starts nothing (not even the job it just handed back, whose message it
        # may still receive): opening a big file only to hand it back would hold up the shutdown.
        await ctx.dispatcher.send_now(process_job(job_id))
        log.info("import left for another worker: this one is stopping", extra={"job_id": str(job_id)})
        return "released"
    lease = uuid.uuid4()
    job = await ctx.db.fetch_one(Q.claim_job, id=job_id, lease_id=lease, stale=s.import_stale_after)
    if job is None:
        return "not-due"
    # The upload's request id, even when the message carrying it was lost (the relay re-drives jobs
    # without one): every line of the job, resumed or not, leads back to the request that started it.
    if job["request_id"]:
        request_id_var.set(job["request_id"])
    log.info("import started", extra={"job_id": str(job_id), "attempt": job["attempts"]})
    if job["cancel_requested"]:
        return await _finish(ctx, job, lease, Totals(), "cancelled")
    last = await ctx.db.fetch_one(Q.last_chunk, job_id=job_id)
    totals = Totals()
    if last is not None:
        totals = Totals(
            last["seq"],
            last["rows_consumed"],
            last["rows_imported"],
            last["rows_failed"],
            rows_skipped=last["rows_skipped"],
            rows_warned=last["rows_warned"],
            row_warnings=tuple(last["row_warnings"]),
        )
    beat = asyncio.create_task(_heartbeat(ctx, job_id, lease))
    try:
        return await _process(ctx, job, lease, totals)
    except LeaseLost as exc:
        log.warning("import lease lost, stopping", extra={"job_id": str(job_id), "reason": str(exc)})
        return "lost"
    except BaseException:
        # This attempt cannot go on (database error, time limit, a process going down): the job goes back to
        # the queue now, for the retry or another worker, rather than stay 'processing' until it looks stale.
        with contextlib.suppress(Exception):
            await ctx.db.execute(Q.release_job, id=job_id, lease_id=lease)
        raise
    finally:
        beat.cancel()


async def _process(ctx: Context, job: asyncpg.Record, lease: UUID, totals: Totals) -> str:
    try:
        copy = await _fetch(ctx, job, lease)
    except FileNotFoundError:
        return await _finish(ctx, job, lease, totals, "failed", "The uploaded file is no longer available")
    except StoreUnavailable as exc:
        return await _finish(ctx, job, lease, totals, "failed", str(exc))
    except CancelRequested:
        return await _finish(ctx, job, lease, totals, "cancelled")
    if copy is None:
        return await _release(ctx, job["id"], lease)
    try:
        return await _import(ctx, job, lease, totals, copy.path)
    finally:
        await copy.discard()


async def _fetch(ctx: Context, job: asyncpg.Record, lease: UUID) -> LocalCopy | None:
    """The job's upload as a local file, or None when the worker is asked to stop first. While the store
    is away the job waits, beating its heart and heeding a cancel, with backoff; StoreUnavailable once
    UPLOAD_STORE_RETRY_FOR seconds have gone by."""
    deadline = time.monotonic() + ctx.settings.upload_store_retry_for
    delay = STORE_BACKOFF_FIRST
    while True:
        try:
            return await ctx.store.fetch(job["stored_path"], scratch_dir(ctx.settings))
        except StoreUnavailable as exc:
            if time.monotonic() + delay > deadline:
                minutes = ctx.settings.upload_store_retry_for / 60
                raise StoreUnavailable(f"The upload store could not be reached for {minutes:g} minutes") from exc
            log.warning("upload store unavailable, import waits", extra={"job_id": str(job["id"]), "error": str(exc)})
        # Waited in a thread on the stop event: a worker asked to stop never waits out a long backoff.
        await asyncio.to_thread(stopping.wait, delay)
        delay = min(delay * 2, STORE_BACKOFF_MAX)
        guard = await ctx.db.fetch_one(Q.chunk_guard, id=job["id"], lease_id=lease)
        if guard is None or not guard["owned"]:
            raise LeaseLost("deleted" if guard is None else "taken over by another worker")
        if guard["cancel_requested"]:
            raise CancelRequested
        if stopping.is_set():
            return None


async def _release(ctx: Context, job_id: UUID, lease: UUID) -> str:
    await ctx.db.execute(Q.release_job, id=job_id, lease_id=lease)
    # Enqueued before this worker exits; if that fails, the relay re-drives the queued job.
    await ctx.dispatcher.send_now(process_job(job_id))
    log.info("import handed back for another worker", extra={"job_id": str(job_id)})
    return "released"


async def _import(ctx: Context, job: asyncpg.Record, lease: UUID, totals: Totals, path: Path) -> str:
    job_id = job["id"]
    options = Options(job["mapping"], job["preset"])
    opening = _in_daemon_thread(open_reader, path, job["kind"], options)
    if not await _ready_unless_stopping(opening):
        opening.add_done_callback(_close_reader)
        return await _release(ctx, job_id, lease)
    try:
        reader = opening.result()
    except ImportFileError as exc:  # unreadable, or (checked at upload already) a mapping that does not fit
        return await _finish(ctx, job, lease, totals, "failed", str(exc))
    pending: asyncio.Future[Any] | None = None
    writing: deque[tuple[asyncio.Task[None], Totals]] = deque()  # chunks being written, in file order
    try:
        if totals.seq == 0:
            await ctx.db.execute(
                Q.set_header,
                id=job_id,
                lease_id=lease,
                header=storable(list(reader.header)),
                warnings=storable(list(reader.warnings)),
            )
        chunks = reader.chunks(size=ctx.settings.import_chunk_rows, skip=totals.rows_consumed)
        loop = asyncio.get_running_loop()
        pending = _in_daemon_thread(next, chunks, None)
        published = time.monotonic()
        planned = totals  # the totals once every chunk handed out so far has committed
        categories_done: asyncio.Future[None] | None = None
        halted = False  # asked to stop: the chunks not yet handed out are left for another worker
        try:
            while True:
                chunk = None
                if pending is not None and not halted:
                    if await _ready_unless_stopping(pending):
                        chunk, pending = pending.result(), None
                    else:
                        halted = True  # the reader's chunk is dropped; another worker reads it again
                if chunk is not None and stopping.is_set():
                    chunk, halted = None, True
                if chunk is not None:
                    # Read the next chunk while this one is written.
                    pending = _in_daemon_thread(next, chunks, None)
                    previous = writing[-1][0] if writing else None
                    mine: asyncio.Future[None] = loop.create_future()
                    planned = planned.after(chunk, job["dry_run"])
                    task = asyncio.create_task(
                        _commit_chunk(ctx, job, lease, planned, chunk, previous, categories_done, mine)
                    )
                    writing.append((task, planned))
                    categories_done = mine
                if not writing:
                    break
                if chunk is not None and len(writing) < CHUNKS_IN_FLIGHT:
                    continue  # hand out the next chunk before waiting for this one
                task, committed = writing.popleft()
                await task
                totals = committed
                if time.monotonic() - published >= PROGRESS_EVERY:
                    published = time.monotonic()
                    cancel = await ctx.db.fetch_val(
                        Q.write_progress, id=job_id, lease_id=lease, progress=totals.progress, **totals.counters()
                    )
                    if cancel is None:
                        raise LeaseLost("the job row no longer carries this lease")
        except CancelRequested:
            return await _finish(ctx, job, lease, await _settle(writing, totals), "cancelled")
        except UnreadableFile as exc:
            return await _finish(ctx, job, lease, await _settle(writing, totals), "failed", str(exc))
        if halted:
            return await _release(ctx, job_id, lease)
        return await _finish(ctx, job, lease, totals, "completed")
    finally:
        # Only after an error: no chunk transaction may outlive this attempt at the job.
        await asyncio.gather(*(task for task, _ in writing), return_exceptions=True)
        if pending is not None and not pending.done():
            # The reader may not be closed under a thread still inside it: the thread's end closes it.
            def close_after(read: asyncio.Future[Any]) -> None:
                if not read.cancelled():
                    read.exception()  # retrieved: a failed read nobody waits for any more is no error
                reader.close()

            pending.add_done_callback(close_after)
        else:
            reader.close()


def _in_daemon_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """`fn(*args)` in a thread of its own, as a future of this loop. A daemon thread (not the loop's
    executor, whose threads the interpreter waits for at exit): a worker that handed its job back exits
    without waiting for the reader to finish a chunk or a workbook it no longer needs."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def run() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits for this any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="import-reader", daemon=True).start()
    return future


async def _ready_unless_stopping(future: asyncio.Future[Any]) -> bool:
    """Waits for `future`; False as soon as the worker is stopping while it still runs."""
    while not future.done():
        if stopping.is_set():
            return False
        await asyncio.wait([future], timeout=STOP_POLL)
    return True


def _close_reader(opening: asyncio.Future[Any]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


async def _settle(writing: deque[tuple[asyncio.Task[None], Totals]], totals: Totals) -> Totals:
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


async def _commit_chunk(
    ctx: Context,
    job: asyncpg.Record,
    lease: UUID,
    checkpoint: Totals,
    chunk: Any,
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
            await _guard(conn, job_id, lease)
            categories: dict[str, UUID] = {}
            if not job["dry_run"]:
                names = {row[CATEGORY] for row in chunk.valid if row[CATEGORY]}
                if categories_before is not None:
                    await categories_before
                if names:
                    categories = await tasks.category_ids(conn, user_id, names)
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
                await _guard(conn, job_id, lease)
    finally:
        # Whatever happened, the next chunk may go on (and will fail on this one's outcome if need be).
        if not categories_done.done():
            categories_done.set_result(None)


async def _write(
    conn: asyncpg.Connection, job: asyncpg.Record, checkpoint: Totals, chunk: Any, categories: dict[str, UUID]
) -> None:
    """A chunk's tasks, its row errors and its checkpoint row (whose key makes a chunk commit once)."""
    job_id, user_id = job["id"], job["user_id"]
    if chunk.valid and not job["dry_run"]:
        ids = uuid7_batch(len(chunk.valid))
        await conn.copy_records_to_table(
            "tasks",
            columns=TASK_COLUMNS,
            records=[
                (task_id, user_id, t, d, st, p, due, categories[c.lower()] if c else None, job_id)
                for task_id, (t, d, st, p, due, c, _row) in zip(ids, chunk.valid, strict=True)
            ],
        )
    if chunk.errors:
        await conn.copy_records_to_table("import_errors", columns=ERROR_COLUMNS, records=_error_records(job_id, chunk))
    row = {
        "job_id": job_id,
        "seq": checkpoint.seq,
        "rows_consumed": checkpoint.rows_consumed,
        "rows_imported": checkpoint.rows_imported,
        "rows_failed": checkpoint.rows_failed,
        "progress": checkpoint.progress,
        "rows_skipped": checkpoint.rows_skipped,
        "rows_warned": checkpoint.rows_warned,
        "row_warnings": storable(list(checkpoint.row_warnings)),
    }
    await run(conn, "execute", Q.insert_chunk, row)


async def _guard(conn: asyncpg.Connection, job_id: UUID, lease: UUID) -> None:
    """LeaseLost unless the job is still this worker's; CancelRequested when a cancel was asked."""
    guard = await run(conn, "fetchrow", Q.chunk_guard, {"id": job_id, "lease_id": lease})
    if guard is None or not guard["owned"]:
        raise LeaseLost("deleted" if guard is None else "taken over by another worker")
    if guard["cancel_requested"]:
        raise CancelRequested


def _error_records(job_id: UUID, chunk: Any) -> list[tuple[Any, ...]]:
    records = []
    seq_by_row: dict[int, int] = {}
    for e in chunk.errors:
        seq = seq_by_row.get(e.row, 0)
        seq_by_row[e.row] = seq + 1
        raw = storable(list(e.raw)) if seq == 0 else None
        records.append((job_id, e.row, seq, e.column, storable(e.message), storable(e.value), raw))
    return records


async def _finish(
    ctx: Context, job: asyncpg.Record, lease: UUID, totals: Totals, status: str, error: str | None = None
) -> str:
    messages: list[Message] = []
    warnings = totals.closing_warnings() if status == "completed" else list(totals.row_warnings)
    async with ctx.db.transaction():
        row = await ctx.db.fetch_one(
            Q.finish_job,
            id=job["id"],
            lease_id=lease,
            status=status,
            error=storable(error),
            warnings=storable(warnings),
            **totals.counters(),
        )
        if row is None:
            raise LeaseLost("could not record the end: lease lost")
        messages.extend(await announce_end(ctx, row))
    ctx.dispatcher.dispatch_soon(*messages)
    metrics.count(f"imports_{status}")
    metrics.count("rows_imported", row["rows_imported"])
    metrics.count("tasks_created", row["rows_imported"])  # every imported row is a task (none on a dry run)
    await remove_upload(ctx, row)
    log.info("import finished", extra={"job_id": str(job["id"]), "status": status, **totals.counters()})
    return status


async def _heartbeat(ctx: Context, job_id: UUID, lease: UUID) -> None:
    # Covers the stretches without chunk commits (opening a big workbook), so the relay and other
    # workers never take a live job for a dead one.
    while True:
        await asyncio.sleep(HEARTBEAT_EVERY)
        try:
            await ctx.db.fetch_val(Q.heartbeat, id=job_id, lease_id=lease)
        except Exception as exc:
            log.warning("import heartbeat failed", extra={"job_id": str(job_id), "error": repr(exc)})


async def redrive(ctx: Context, limit: int = 100) -> list[Message]:
    """Messages for import jobs whose broker message looks lost (queued too long, or a worker stopped beating)."""
    s = ctx.settings
    rows = await ctx.db.fetch_all(Q.due_imports, grace=s.relay_grace, stale=s.import_stale_after, limit=limit)
    return [process_job(r["id"]) for r in rows]

"""The import worker's loop: claim a job, read its file in chunks, commit each chunk with its checkpoint
(chunks.py), finish.

A redelivered message (killed worker, SIGTERM, broker restart) claims the job again and resumes after the
last committed chunk. Parsing runs in a thread, one chunk ahead of the database: the event loop stays free
for heartbeats and other actors, and reading overlaps with COPY.

A stopping worker (`stopping`, set on SIGTERM) hands its job back at once: the chunks being written
commit (or roll back), the job row is released and a message sent for another worker, which resumes
after the last committed chunk. It does not wait for the reader either (opening a big workbook takes
seconds): reading runs in daemon threads, which never hold up the process's exit.

Chunks are written by CHUNKS_IN_FLIGHT transactions at once, on as many connections: the tasks table's
indexes make PostgreSQL the bottleneck (one backend busy, the worker nearly idle), and a second backend
uses the second core. Their commits stay in file order (chunks.py says how).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from service import metrics
from service.context import Context
from service.db import Queries
from service.imports.chunks import CancelRequested, LeaseLost, Totals, check_guard, commit_chunk, settle, storable
from service.imports.files import ImportFileError, Options, UnreadableFile, open_reader
from service.imports.service import announce_end, process_job, remove_upload
from service.imports.threads import close_once_open, in_daemon_thread, ready_unless
from service.logs import request_id_var
from service.messages import Message
from service.storage import LocalCopy, StoreUnavailable, scratch_dir

log = logging.getLogger("tasklane.imports")
Q = Queries("imports")
PROGRESS_EVERY = 1.0  # seconds between writes of the job row's counters
HEARTBEAT_EVERY = 5.0
STORE_BACKOFF_FIRST, STORE_BACKOFF_MAX = 1.0, 30.0  # seconds between tries while the upload store is away
CHUNKS_IN_FLIGHT = 2  # transactions writing chunks at once (one per core of a small database server)
STOP_POLL = 0.1  # seconds between looks at `stopping` while the reader works

# Set by the worker when it is asked to stop: a job in progress then hands itself back instead of holding
# the shutdown for the rest of the file.
stopping = threading.Event()


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
            last["rows_processed"],
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
        check_guard(await ctx.db.fetch_one(Q.chunk_guard, id=job["id"], lease_id=lease))
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
    opening = in_daemon_thread(open_reader, path, job["kind"], options)
    if not await ready_unless(opening, stopping, STOP_POLL):
        opening.add_done_callback(close_once_open)
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
        chunks = reader.chunks(size=ctx.settings.import_chunk_rows, skip=totals.rows_processed)
        loop = asyncio.get_running_loop()
        pending = in_daemon_thread(next, chunks, None)
        published = time.monotonic()
        planned = totals  # the totals once every chunk handed out so far has committed
        categories_done: asyncio.Future[None] | None = None
        halted = False  # asked to stop: the chunks not yet handed out are left for another worker
        try:
            while True:
                chunk = None
                if pending is not None and not halted:
                    if await ready_unless(pending, stopping, STOP_POLL):
                        chunk, pending = pending.result(), None
                    else:
                        halted = True  # the reader's chunk is dropped; another worker reads it again
                if chunk is not None and stopping.is_set():
                    chunk, halted = None, True
                if chunk is not None:
                    # Read the next chunk while this one is written.
                    pending = in_daemon_thread(next, chunks, None)
                    previous = writing[-1][0] if writing else None
                    mine: asyncio.Future[None] = loop.create_future()
                    planned = planned.after(chunk, job["dry_run"])
                    task = asyncio.create_task(
                        commit_chunk(ctx, job, lease, planned, chunk, previous, categories_done, mine)
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
            return await _finish(ctx, job, lease, await settle(writing, totals), "cancelled")
        except UnreadableFile as exc:
            return await _finish(ctx, job, lease, await settle(writing, totals), "failed", str(exc))
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

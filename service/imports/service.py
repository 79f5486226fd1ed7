"""Import jobs through their life: created from an upload, read, cancelled, deleted, and ended (the
completion webhook, the upload's removal). Lists and errors are in `listing`, the event stream in `events`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn
from uuid import UUID

import asyncpg

from service import idempotency, metrics
from service.context import Context
from service.db import Queries
from service.errors import Conflict, NotFound
from service.http.routing import API_PREFIX
from service.ids import parse_id
from service.imports.files import safe_filename
from service.imports.intake import check_upload, parse_bool, put_upload, sniff_upload, store_down
from service.imports.schemas import import_out
from service.imports.uploads import Upload
from service.logs import request_id_var
from service.messages import Message
from service.notifications import webhooks
from service.storage import StoreUnavailable

Q = Queries("imports")
TERMINAL = ("completed", "failed", "cancelled")
log = logging.getLogger("tasklane.imports")


class JobNotFound(NotFound):
    slug, title = "import-not-found", "Import not found"


class JobFinished(Conflict):
    slug, title = "import-finished", "Import already finished"


def process_job(job_id: UUID) -> Message:
    return Message("imports.process", (str(job_id),))


def _job_id(value: str) -> UUID:
    job_id = parse_id(value)
    if job_id is None:
        raise JobNotFound("No import with this id")
    return job_id


async def create_job(
    ctx: Context,
    user_id: UUID,
    job_id: UUID,
    upload: Upload,
    key: idempotency.Key | None,
    abandoned: Callable[[], Awaitable[NoReturn]] | None = None,
) -> idempotency.Outcome:
    """Turn a streamed upload into a queued job: its staging file goes into the upload store first, and the
    job is committed (then enqueued) only once the object is there. The staging file is removed whatever
    happens; an object whose job could not be committed is deleted. `abandoned` raises once the client has
    gone: the transfer into the store then stops and is aborted."""
    s = ctx.settings
    kind = await sniff_upload(upload)
    try:
        options = await check_upload(upload, kind)
        dry_run = parse_bool("dry_run", upload.fields.get("dry_run"))
        url = (upload.fields.get("webhook_url") or "").strip() or None
        if url is not None:
            url = await webhooks.validate_url(url, allow_private=s.webhook_allow_private)
        stored = f"{job_id}_{safe_filename(upload.filename)}"
        await put_upload(ctx, stored, upload, abandoned)
    finally:
        await upload.discard()
    messages: list[Message] = []

    async def create() -> idempotency.Outcome:
        row = await ctx.db.fetch_one(
            Q.create_job,
            id=job_id,
            user_id=user_id,
            filename=upload.filename[:255],
            kind=kind,
            stored_path=stored,
            size_bytes=upload.size,
            dry_run=dry_run,
            webhook_url=url,
            request_id=request_id_var.get(),
            mapping=options.mapping,
            preset=options.preset,
        )
        messages.append(process_job(job_id))
        return idempotency.Outcome.json(202, import_out(row), {"Location": f"{API_PREFIX}/imports/{job_id}"})

    try:
        outcome = await idempotency.once(ctx, user_id, key, lambda: (upload.sha256 or "").encode(), create)
    except BaseException:
        await _delete_object(ctx, stored)  # no job points at it
        raise
    if outcome.replayed:
        await _delete_object(ctx, stored)
    ctx.dispatcher.dispatch_soon(*messages)
    return outcome


async def get_job(ctx: Context, user_id: UUID, job_id: str) -> asyncpg.Record:
    """One of the user's jobs; JobNotFound (404) for another user's, an unknown or a malformed id."""
    row = await ctx.db.fetch_one(Q.get_job, id=_job_id(job_id), user_id=user_id)
    if row is None:
        raise JobNotFound("No import with this id")
    return row


async def cancel_job(ctx: Context, user_id: UUID, job_id: str) -> asyncpg.Record:
    """Asks the job to stop: a queued one ends at once, a running one at its next chunk."""
    messages: list[Message] = []
    uid = _job_id(job_id)
    async with ctx.db.transaction():
        row = await ctx.db.fetch_one(Q.request_cancel, id=uid, user_id=user_id)
        if row is None:
            await get_job(ctx, user_id, job_id)  # 404 when it does not exist
            raise JobFinished("This import has already finished")
        if row["status"] == "cancelled":
            # It never started: no worker will finish it, so announce the end here.
            messages.extend(await announce_end(ctx, row))
    ctx.dispatcher.dispatch_soon(*messages)
    if row["status"] == "cancelled":
        metrics.count("imports_cancelled")  # no worker will: the job ended here
        await remove_upload(ctx, row)
    return row


async def delete_job(ctx: Context, user_id: UUID, job_id: str) -> None:
    uid = _job_id(job_id)
    # A running job is cancelled first, in a statement of its own: once that is committed, the worker's
    # chunk transactions see it and roll back, releasing the job row the delete then waits for (it would
    # otherwise wait behind chunk after chunk, each holding the row while the next one starts).
    await ctx.db.fetch_one(Q.request_cancel, id=uid, user_id=user_id)
    # The row goes only with its object: if the store is away, the delete rolls back and answers 503,
    # rather than leave an object no row remembers.
    async with ctx.db.transaction():
        row = await ctx.db.fetch_one(Q.delete_job, id=uid, user_id=user_id)
        if row is None:
            raise JobNotFound("No import with this id")
        if row["file_removed_at"] is None:
            try:
                await ctx.store.delete(row["stored_path"])
            except StoreUnavailable as exc:
                raise store_down(ctx, exc, "delete the file") from None


async def deliveries(ctx: Context, user_id: UUID, job_id: str) -> list[dict[str, Any]]:
    """The attempts to deliver the job's completion webhook."""
    job = await get_job(ctx, user_id, job_id)
    return await webhooks.list_attempts(ctx, job["id"], user_id)


async def announce_end(ctx: Context, job: asyncpg.Record) -> list[Message]:
    """Inside the transaction that ended a job: queue its completion webhook, if it asked for one."""
    if not job["webhook_url"]:
        return []
    data = {
        "job_id": str(job["id"]),
        "status": job["status"],
        "rows_processed": job["rows_processed"],
        "rows_imported": job["rows_imported"],
        "rows_failed": job["rows_failed"],
        "finished_at": job["finished_at"].isoformat(),
    }
    if job["status"] == "failed":
        data["error"] = job["error"]
    return [
        await webhooks.queue_import_event(
            ctx,
            job_id=job["id"],
            user_id=job["user_id"],
            url=job["webhook_url"],
            event_type=f"import.{job['status']}",
            data=data,
        )
    ]


async def remove_upload(ctx: Context, job: asyncpg.Record) -> None:
    """Delete a finished job's file now, unless uploads are kept for a while (UPLOAD_RETENTION). If the
    store is away, the file stays marked as present and the relay's purge deletes it later."""
    if ctx.settings.upload_retention > 0:
        return
    if await _delete_object(ctx, job["stored_path"]):
        await ctx.db.execute(Q.mark_file_removed, id=job["id"])


async def purge_uploads(ctx: Context, limit: int = 100) -> int:
    """Remove files of jobs finished longer ago than the retention period (run by the relay). While the
    store is away it waits for a later sweep, rather than hold the relay up with one failure per file."""
    rows = await ctx.db.fetch_all(Q.files_to_remove, retention=ctx.settings.upload_retention, limit=limit)
    removed = 0
    for row in rows:
        if not await _delete_object(ctx, row["stored_path"]):
            break
        await ctx.db.execute(Q.mark_file_removed, id=row["id"])
        removed += 1
    return removed


async def _delete_object(ctx: Context, stored: str) -> bool:
    """Deletes an upload from the store; False (logged) when the store is away, and the object stays."""
    try:
        await ctx.store.delete(stored)
    except StoreUnavailable as exc:
        log.warning("upload not deleted", extra={"key": stored, "error": str(exc)})
        return False
    return True

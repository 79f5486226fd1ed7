"""Import jobs as the API sees them: create from an upload, read, list, cancel, delete, and their errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn
from uuid import UUID

import asyncpg

from service import idempotency, metrics, pagination
from service.context import Context
from service.db import Queries
from service.errors import Conflict, NotFound, Unavailable, Unprocessable, UnsupportedMediaType
from service.imports.files import (
    FIELDS,
    EmptyFile,
    Kind,
    MappingError,
    Options,
    UnreadableFile,
    UnsupportedFile,
    csv_line,
    error_record,
    errors_header,
    open_reader,
    parse_options,
    safe_filename,
    sniff,
)
from service.imports.files.csv_reader import SAMPLE_BYTES
from service.imports.files.export import BOM
from service.imports.files.preview import preview
from service.imports.files.sniff import EXTENSIONS, extension
from service.imports.uploads import Upload
from service.logs import request_id_var
from service.messages import Message
from service.notifications import webhooks
from service.storage import StoreUnavailable, TransferStopped

Q = Queries("imports")
TERMINAL = ("completed", "failed", "cancelled")
PUBLIC = (
    "id", "status", "filename", "size_bytes", "dry_run", "rows_processed", "rows_imported", "rows_failed",
    "progress", "warnings", "error", "created_at", "started_at", "finished_at", "webhook_url",
)  # fmt: skip
CSV_BATCH = 1000
STORE_RETRY_AFTER = 10  # seconds a client is asked to wait when the upload store is away
log = logging.getLogger("tasklane.imports")
# A workbook is loaded whole to read its first rows (calamine reads no other way): one at a time per web
# process, so previews and checks at upload cannot add up to several workbooks in memory.
_WORKBOOK_SLOT = threading.BoundedSemaphore(1)


class JobNotFound(NotFound):
    slug, title = "import-not-found", "Import not found"


class JobFinished(Conflict):
    slug, title = "import-finished", "Import already finished"


class StoreDown(Unavailable):
    slug, title = "upload-store-unavailable", "Upload store unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": str(STORE_RETRY_AFTER)})


def public(row: asyncpg.Record) -> dict[str, Any]:
    return {name: row[name] for name in PUBLIC}


def process_job(job_id: UUID) -> Message:
    return Message("imports.process", (str(job_id),))


def parse_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise JobNotFound("No import with this id") from None


def _parse_bool(name: str, value: str | None) -> bool:
    if value is None or value.strip().lower() in {"", "false", "0", "no", "off"}:
        return False
    if value.strip().lower() in {"true", "1", "yes", "on"}:
        return True
    raise Unprocessable(f"{name} must be true or false", errors=[{"field": name, "message": "Must be true or false"}])


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
        dry_run = _parse_bool("dry_run", upload.fields.get("dry_run"))
        url = (upload.fields.get("webhook_url") or "").strip() or None
        if url is not None:
            url = await webhooks.validate_url_async(url, allow_private=s.webhook_allow_private)
        stored = f"{job_id}_{safe_filename(upload.filename)}"
        await _put(ctx, stored, upload, abandoned)
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
        return idempotency.Outcome.json(202, public(row), {"Location": f"/api/v1/imports/{job_id}"})

    try:
        outcome = await idempotency.once(ctx, user_id, key, lambda: (upload.sha256 or "").encode(), create)
    except BaseException:
        await _delete_object(ctx, stored)  # no job points at it
        raise
    if outcome.replayed:
        await _delete_object(ctx, stored)
    ctx.dispatcher.dispatch_soon(*messages)
    return outcome


async def sniff_upload(upload: Upload) -> Kind:
    """The kind of an uploaded file (415 for what is not a task list, 422 for an empty file); a refused
    upload's file is removed."""
    try:
        if upload.size == 0:
            raise Unprocessable("The file is empty", errors=[{"field": "file", "message": "The file is empty"}])
        return await asyncio.to_thread(sniff, upload.filename, upload.head, upload.path)
    except UnsupportedFile as exc:
        await upload.discard()
        raise UnsupportedMediaType(str(exc)) from None
    except Unprocessable:
        await upload.discard()
        raise


def upload_options(fields: dict[str, str]) -> Options:
    """The `mapping` and `preset` form fields; 422 naming what is wrong."""
    try:
        return parse_options(fields.get("mapping"), fields.get("preset"))
    except MappingError as exc:
        raise Unprocessable(str(exc), errors=exc.errors) from None


async def check_upload(upload: Upload, kind: Kind) -> Options:
    """What is refused at upload rather than left to a job that would fail: an empty file, and a mapping
    or preset that does not fit the file's header. Only the start of a CSV file is read; a workbook is
    opened only when the client sent a mapping or preset to check. Other problems (a corrupt workbook,
    no title column) still fail the job, with the reason, as they always have."""
    options = upload_options(upload.fields)
    if kind != "csv" and options == Options():
        return options
    try:
        await asyncio.to_thread(_inspect, upload.path, kind, options)
    except EmptyFile as exc:
        raise Unprocessable(str(exc), errors=[{"field": "file", "message": str(exc)}]) from None
    except MappingError as exc:
        raise Unprocessable(str(exc), errors=exc.errors) from None
    except UnreadableFile:
        pass
    return options


def _inspect(path: Path, kind: str, options: Options) -> None:
    with _workbook_slot(kind), open_reader(path, kind, options, whole=False):
        pass


@contextlib.contextmanager
def _workbook_slot(kind: str) -> Iterator[None]:
    if kind == "csv":
        yield
        return
    with _WORKBOOK_SLOT:
        yield


def preview_has_enough(upload: Upload) -> bool:
    """A preview of a CSV file needs its start only: what the importer decides from (the header search
    and the sample the date orders come from). A workbook is a zip, readable only whole."""
    return EXTENSIONS.get(extension(upload.filename)) == "csv" and upload.size >= SAMPLE_BYTES


async def preview_upload(upload: Upload) -> dict[str, Any]:
    """The preview of an upload (received whole, or only its start); the file is removed afterwards."""
    try:
        kind = await sniff_upload(upload)
        options = upload_options(upload.fields)
        try:
            return await asyncio.to_thread(_preview, upload.path, kind, options, not upload.complete)
        except MappingError as exc:
            raise Unprocessable(str(exc), errors=exc.errors) from None
        except UnreadableFile as exc:
            raise Unprocessable(str(exc), errors=[{"field": "file", "message": str(exc)}]) from None
    finally:
        await upload.discard()


def _preview(path: Path, kind: str, options: Options, partial: bool) -> dict[str, Any]:
    with _workbook_slot(kind):
        return preview(path, kind, options, partial=partial)


async def _put(ctx: Context, stored: str, upload: Upload, abandoned: Callable[[], Awaitable[NoReturn]] | None) -> None:
    """The staging file into the store, unless the client goes first (then the transfer is aborted)."""
    gone = asyncio.Event()
    watch = asyncio.ensure_future(abandoned()) if abandoned is not None else None
    if watch is not None:
        watch.add_done_callback(lambda _: gone.set())
    try:
        await ctx.store.put(stored, upload.path, stop=gone)
    except TransferStopped:
        assert watch is not None
        watch.result()  # raises: the client is gone
        raise
    except StoreUnavailable as exc:
        raise _store_down(ctx, exc, "take the file") from None
    finally:
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)


def _store_down(ctx: Context, exc: StoreUnavailable, doing: str) -> StoreDown:
    log.warning("upload store unavailable", extra={"store": ctx.store.kind, "error": str(exc)})
    return StoreDown(f"The upload store cannot {doing} right now; try again shortly")


async def _delete_object(ctx: Context, stored: str) -> bool:
    """Deletes an upload from the store; False (logged) when the store is away, and the object stays."""
    try:
        await ctx.store.delete(stored)
    except StoreUnavailable as exc:
        log.warning("upload not deleted", extra={"key": stored, "error": str(exc)})
        return False
    return True


async def get_job(ctx: Context, user_id: UUID, job_id: UUID) -> asyncpg.Record:
    row = await ctx.db.fetch_one(Q.get_job, id=job_id, user_id=user_id)
    if row is None:
        raise JobNotFound("No import with this id")
    return row


def _scope(user_id: UUID, what: bytes) -> bytes:
    return what + b":" + user_id.bytes


async def list_jobs(ctx: Context, user_id: UUID, limit: int, cursor: str | None) -> dict[str, Any]:
    keyset = pagination.Keyset(ctx.settings.secret_key, _scope(user_id, b"imports"))
    after = keyset.position(cursor or None, _job_position)
    if after is None:
        rows = await ctx.db.fetch_all(Q.list_jobs_first, user_id=user_id, limit=limit + 1)
    else:
        created_at, last_id = after
        rows = await ctx.db.fetch_all(
            Q.list_jobs_after, user_id=user_id, created_at=created_at, id=last_id, limit=limit + 1
        )
    page = keyset.page(rows, limit, lambda row: [row["created_at"].isoformat(), str(row["id"])])
    return {"items": [public(r) for r in page.items], "next_cursor": page.next_cursor}


def _job_position(values: list[Any]) -> tuple[datetime, UUID]:
    created_at, job_id = values
    return datetime.fromisoformat(created_at), UUID(job_id)


async def cancel_job(ctx: Context, user_id: UUID, job_id: UUID) -> asyncpg.Record:
    messages: list[Message] = []
    async with ctx.db.transaction():
        row = await ctx.db.fetch_one(Q.request_cancel, id=job_id, user_id=user_id)
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


async def delete_job(ctx: Context, user_id: UUID, job_id: UUID) -> None:
    # A running job is cancelled first, in a statement of its own: once that is committed, the worker's
    # chunk transactions see it and roll back, releasing the job row the delete then waits for (it would
    # otherwise wait behind chunk after chunk, each holding the row while the next one starts).
    await ctx.db.fetch_one(Q.request_cancel, id=job_id, user_id=user_id)
    # The row goes only with its object: if the store is away, the delete rolls back and answers 503,
    # rather than leave an object no row remembers.
    async with ctx.db.transaction():
        row = await ctx.db.fetch_one(Q.delete_job, id=job_id, user_id=user_id)
        if row is None:
            raise JobNotFound("No import with this id")
        if row["file_removed_at"] is None:
            try:
                await ctx.store.delete(row["stored_path"])
            except StoreUnavailable as exc:
                raise _store_down(ctx, exc, "delete the file") from None


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


async def errors_page(ctx: Context, user_id: UUID, job_id: UUID, limit: int, cursor: str | None) -> dict[str, Any]:
    await get_job(ctx, user_id, job_id)
    keyset = pagination.Keyset(ctx.settings.secret_key, _scope(user_id, b"import-errors:" + job_id.bytes))
    after = keyset.position(cursor or None, _error_position)
    if after is None:
        rows = await ctx.db.fetch_all(Q.errors_first, job_id=job_id, limit=limit + 1)
    else:
        row_number, seq = after
        rows = await ctx.db.fetch_all(Q.errors_after, job_id=job_id, row_number=row_number, seq=seq, limit=limit + 1)
    page = keyset.page(rows, limit, lambda row: [row["row_number"], row["seq"]])
    return {
        "items": [
            {"row": r["row_number"], "column": r["column_name"], "message": r["message"], "value": r["value"]}
            for r in page.items
        ],
        "next_cursor": page.next_cursor,
    }


def _error_position(values: list[Any]) -> tuple[int, int]:
    row_number, seq = values
    if not isinstance(row_number, int) or not isinstance(seq, int):
        raise ValueError("not a row error's position")
    return row_number, seq


async def errors_csv(ctx: Context, user_id: UUID, job_id: UUID) -> AsyncIterator[bytes]:
    """errors.csv: the failed rows as they were in the file, plus an `error` column, ready to fix and
    re-upload. Cells are defused so a spreadsheet never runs them as formulas."""
    job = await get_job(ctx, user_id, job_id)
    header = list(job["header"] or FIELDS)

    async def lines() -> AsyncIterator[bytes]:
        yield (BOM + csv_line(errors_header(header))).encode()
        after = 0
        while True:
            rows = await ctx.db.fetch_all(Q.failed_rows_after, job_id=job_id, row_number=after, limit=CSV_BATCH)
            if not rows:
                return
            yield "".join(csv_line(error_record(header, r["raw"] or [], r["error"])) for r in rows).encode()
            after = rows[-1]["row_number"]

    return lines()

"""HTTP endpoints of the imports API."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from service import idempotency
from service.accounts.auth import current_account
from service.http.early import AnswerThenDrain
from service.http.openapi import Body, Webhook, operation
from service.imports import events as job_events
from service.imports import intake, listing, service
from service.imports.schemas import (
    EVENT_STREAM,
    FORM_FIELDS,
    PREVIEW_BODY,
    PREVIEW_FIELDS,
    UPLOAD_BODY,
    DeliveryList,
    ImportEvent,
    ImportOut,
    ImportPage,
    PageQuery,
    PreviewOut,
    RowErrorPage,
    import_out,
)
from service.imports.uploads import ENVELOPE_BYTES, receive_upload, until_disconnected
from service.json import dumps, json_response

WEBHOOKS = {
    f"import.{status}": Webhook(
        f"An import {status}",
        ImportEvent,
        "POSTed to the import's webhook_url; retried on network errors, 5xx and 429 (4 attempts in all). "
        "Verify the signature with WEBHOOK_SECRET (e.g. the standardwebhooks library) and drop repeated webhook-ids.",
    )
    for status in ("completed", "failed", "cancelled")
}
DELETED = b'{"status": "deleted"}'  # the data of the `end` event of a deleted job's stream


def _query(request: Request, model: type[BaseModel]) -> BaseModel:
    return model.model_validate(dict(request.query_params))


@operation(
    summary="Upload a CSV or Excel file to import",
    tag="imports",
    body=UPLOAD_BODY,
    responses={202: ImportOut},
    headers={202: {"Location": "The import job"}},
    idempotent=True,
    errors=(503,),
    description=(
        "Streams the file to disk, puts it into the upload store, then queues the job. Only .csv (.tsv, .txt), "
        ".xlsx and .xls (checked by content). An empty file, or a `mapping`/`preset` that does not fit the "
        "file's header row, answers 422. 503 with Retry-After when the upload store is unavailable: nothing "
        "was kept, send the same request again later."
    ),
)
async def create(request: Request) -> Response:
    account = await current_account(request)
    key = idempotency.key_from(request)
    settings = request.state.settings
    job_id = uuid.uuid4()
    upload = await receive_upload(
        request,
        Path(settings.upload_dir) / f"{job_id}.part",
        max_bytes=settings.max_upload_bytes,
        fields=FORM_FIELDS,
        digest=key is not None,
    )
    outcome = await service.create_job(
        request.state.ctx, account.id, job_id, upload, key, abandoned=partial(until_disconnected, request)
    )
    return outcome.response()


@operation(
    summary="Preview how a file would be imported, without importing it",
    tag="imports",
    body=PREVIEW_BODY,
    responses={200: PreviewOut},
    errors=(413, 415, 422),
    description="Reads the start of the file (a CSV file is not read to its end: send `mapping` and `preset` "
    "before `file`), and answers with the format found, the header row, the proposed mapping and the first "
    "rows as they would be imported. Creates no job and keeps nothing. A file the import would refuse, or a "
    "mapping that does not fit it, answers 422 with the reason.",
)
async def preview(request: Request) -> Response:
    await current_account(request)
    scratch = Path(tempfile.gettempdir()) / f"tasklane-preview-{uuid.uuid4()}.part"
    max_bytes = request.state.settings.max_upload_bytes
    upload = await receive_upload(
        request, scratch, max_bytes=max_bytes, fields=PREVIEW_FIELDS, enough=intake.preview_has_enough
    )
    response = json_response(await intake.preview_upload(upload))
    # Answered from the file's start: the rest of the body is then read and dropped, never stored.
    return response if upload.complete else AnswerThenDrain(response, limit=max_bytes + ENVELOPE_BYTES)


@operation(
    summary="The user's import jobs, newest first",
    tag="imports",
    query=PageQuery,
    responses={200: ImportPage},
    errors=(400,),
)
async def list_imports(request: Request) -> Response:
    account = await current_account(request)
    query = _query(request, PageQuery)
    assert isinstance(query, PageQuery)
    return json_response(await listing.list_jobs(request.state.ctx, account.id, query.limit, query.cursor))


@operation(summary="One import job", tag="imports", responses={200: ImportOut}, errors=(404,))
async def get_import(request: Request) -> Response:
    account = await current_account(request)
    job = await service.get_job(request.state.ctx, account.id, request.path_params["id"])
    return json_response(import_out(job))


@operation(summary="Stop an import at its next chunk", tag="imports", responses={202: ImportOut}, errors=(404, 409))
async def cancel(request: Request) -> Response:
    account = await current_account(request)
    job = await service.cancel_job(request.state.ctx, account.id, request.path_params["id"])
    return json_response(import_out(job), status_code=202)


@operation(summary="Delete an import (its tasks stay)", tag="imports", responses={204: None}, errors=(404,))
async def delete(request: Request) -> Response:
    account = await current_account(request)
    await service.delete_job(request.state.ctx, account.id, request.path_params["id"])
    return Response(status_code=204)


@operation(
    summary="The rows an import could not take",
    tag="imports",
    query=PageQuery,
    responses={200: RowErrorPage},
    errors=(400, 404),
)
async def errors(request: Request) -> Response:
    account = await current_account(request)
    query = _query(request, PageQuery)
    assert isinstance(query, PageQuery)
    job_id = request.path_params["id"]
    return json_response(await listing.errors_page(request.state.ctx, account.id, job_id, query.limit, query.cursor))


@operation(
    summary="The failed rows as CSV, with an error column",
    tag="imports",
    responses={200: Body("text/csv")},
    errors=(404,),
    headers={200: {"Content-Disposition": 'attachment; filename="import-<id>-errors.csv"'}},
)
async def errors_csv(request: Request) -> Response:
    account = await current_account(request)
    export = await listing.errors_csv(request.state.ctx, account.id, request.path_params["id"])
    return StreamingResponse(
        export.lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )


@operation(
    summary="Attempts to deliver the completion webhook", tag="imports", responses={200: DeliveryList}, errors=(404,)
)
async def deliveries(request: Request) -> Response:
    account = await current_account(request)
    return json_response({"items": await service.deliveries(request.state.ctx, account.id, request.path_params["id"])})


@operation(
    summary="Live progress as server-sent events",
    tag="imports",
    responses={200: EVENT_STREAM},
    errors=(404,),
    description="`event: progress` with the job (as GET /imports/{id} shows it) whenever it changes, a "
    "comment every 15 s while nothing does, and `event: end` once it has finished (or was deleted).",
)
async def events(request: Request) -> Response:
    account = await current_account(request)
    stream = await job_events.job_events(request.state.ctx, account.id, request.path_params["id"])
    return StreamingResponse(
        _server_sent(stream),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _server_sent(stream: AsyncIterator[job_events.Event | None]) -> AsyncIterator[bytes]:
    """The events in text/event-stream form; a keep-alive is a comment."""
    async for event in stream:
        if event is None:
            yield b": keep-alive\n\n"
            continue
        data = DELETED if event.job is None else dumps(event.job)
        yield b"event: " + (b"end" if event.end else b"progress") + b"\ndata: " + data + b"\n\n"


routes = [
    Route("/imports", create, methods=["POST"]),
    Route("/imports/preview", preview, methods=["POST"]),
    Route("/imports", list_imports, methods=["GET"]),
    Route("/imports/{id}", get_import, methods=["GET"]),
    Route("/imports/{id}", delete, methods=["DELETE"]),
    Route("/imports/{id}/cancel", cancel, methods=["POST"]),
    Route("/imports/{id}/errors", errors, methods=["GET"]),
    Route("/imports/{id}/errors.csv", errors_csv, methods=["GET"]),
    Route("/imports/{id}/events", events, methods=["GET"]),
    Route("/imports/{id}/deliveries", deliveries, methods=["GET"]),
]

"""HTTP endpoints of the imports API."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from service import idempotency
from service.http.auth import current_account
from service.http.early import AnswerThenDrain
from service.http.openapi import Body, Webhook, operation
from service.imports import service
from service.imports.files.presets import CHOICES as PRESETS
from service.imports.schemas import (
    DeliveryList,
    ImportEvent,
    ImportOut,
    ImportPage,
    PageQuery,
    PreviewOut,
    RowErrorPage,
)
from service.imports.uploads import ENVELOPE_BYTES, receive_upload, until_disconnected
from service.json import dumps, json_response
from service.notifications import webhooks

FILE_PROPERTY = {
    "type": "string",
    "format": "binary",
    "description": ".csv (or tab-delimited .tsv/.txt), .xlsx or .xls, up to MAX_UPLOAD_BYTES",
}
# The kind of file is told by its name and checked against its content.
FILE_ENCODING = {
    "file": {
        "headers": {
            "Content-Disposition": {
                "description": "The file's name, ending in .csv, .tsv, .txt, .xlsx or .xls",
                "schema": {"type": "string"},
                "example": 'form-data; name="file"; filename="tasks.csv"',
            }
        }
    }
}
OPTION_PROPERTIES: dict[str, Any] = {
    "mapping": {
        "type": "string",
        "description": "A JSON object of source header -> field name (title, description, status, priority, "
        "due_date, category) or null to ignore the column; it overrides the matching by header names. A field "
        "or header that does not exist answers 422.",
        "example": '{"Task": "title", "When": "due_date", "Owner": null}',
    },
    "preset": {
        "type": "string",
        "enum": list(PRESETS),
        "description": "The export format, when it should not be recognised from the header row "
        "(none: match headers by their names only)",
    },
}
UPLOAD_BODY = Body(
    "multipart/form-data",
    {
        "type": "object",
        "required": ["file"],
        "additionalProperties": False,
        "properties": {
            "file": FILE_PROPERTY,
            "webhook_url": {
                "type": "string",
                "format": "uri",
                "maxLength": webhooks.MAX_URL_LENGTH,
                "pattern": webhooks.URL_PATTERN,
                "description": "POSTed a signed event when the job ends (see the webhooks of this document); "
                "http or https, without user name or password",
            },
            "dry_run": {"type": "boolean", "description": "Validate every row, import nothing"},
            **OPTION_PROPERTIES,
        },
    },
    encoding=FILE_ENCODING,
)
PREVIEW_BODY = Body(
    "multipart/form-data",
    {
        "type": "object",
        "required": ["file"],
        "additionalProperties": False,
        "properties": {"file": FILE_PROPERTY, **OPTION_PROPERTIES},
    },
    encoding=FILE_ENCODING,
)
# The text fields each upload takes, besides the file: exactly those its body above describes.
FORM_FIELDS = frozenset(UPLOAD_BODY.schema["properties"]) - {"file"}
PREVIEW_FIELDS = frozenset(PREVIEW_BODY.schema["properties"]) - {"file"}
WEBHOOKS = {
    f"import.{status}": Webhook(
        f"An import {status}",
        ImportEvent,
        "POSTed to the import's webhook_url; retried on network errors, 5xx and 429 (4 attempts in all). "
        "Verify the signature with WEBHOOK_SECRET (e.g. the standardwebhooks library) and drop repeated webhook-ids.",
    )
    for status in ("completed", "failed", "cancelled")
}
# One server-sent event (comments, the keep-alives, are not events).
EVENT_STREAM = Body(
    "text/event-stream",
    {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"enum": ["progress", "end"]},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "description": 'The job as GET /imports/{id} shows it; {"status": "deleted"} at the end of '
                "a deleted job's stream",
            },
        },
    },
)
EVENT_POLL = 0.5
KEEP_ALIVE = 15.0


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
        request, scratch, max_bytes=max_bytes, fields=PREVIEW_FIELDS, enough=service.preview_has_enough
    )
    response = json_response(await service.preview_upload(upload))
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
    return json_response(await service.list_jobs(request.state.ctx, account.id, query.limit, query.cursor))


@operation(summary="One import job", tag="imports", responses={200: ImportOut}, errors=(404,))
async def get_import(request: Request) -> Response:
    account = await current_account(request)
    job = await service.get_job(request.state.ctx, account.id, service.parse_id(request.path_params["id"]))
    return json_response(service.public(job))


@operation(summary="Stop an import at its next chunk", tag="imports", responses={202: ImportOut}, errors=(404, 409))
async def cancel(request: Request) -> Response:
    account = await current_account(request)
    job = await service.cancel_job(request.state.ctx, account.id, service.parse_id(request.path_params["id"]))
    return json_response(service.public(job), status_code=202)


@operation(summary="Delete an import (its tasks stay)", tag="imports", responses={204: None}, errors=(404,))
async def delete(request: Request) -> Response:
    account = await current_account(request)
    await service.delete_job(request.state.ctx, account.id, service.parse_id(request.path_params["id"]))
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
    job_id = service.parse_id(request.path_params["id"])
    return json_response(await service.errors_page(request.state.ctx, account.id, job_id, query.limit, query.cursor))


@operation(
    summary="The failed rows as CSV, with an error column",
    tag="imports",
    responses={200: Body("text/csv")},
    errors=(404,),
    headers={200: {"Content-Disposition": 'attachment; filename="import-<id>-errors.csv"'}},
)
async def errors_csv(request: Request) -> Response:
    account = await current_account(request)
    job_id = service.parse_id(request.path_params["id"])
    lines = await service.errors_csv(request.state.ctx, account.id, job_id)
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{job_id}-errors.csv"'},
    )


@operation(
    summary="Attempts to deliver the completion webhook", tag="imports", responses={200: DeliveryList}, errors=(404,)
)
async def deliveries(request: Request) -> Response:
    account = await current_account(request)
    job_id = service.parse_id(request.path_params["id"])
    await service.get_job(request.state.ctx, account.id, job_id)
    return json_response({"items": await webhooks.list_attempts(request.state.ctx, job_id, account.id)})


@operation(
    summary="Live progress as server-sent events",
    tag="imports",
    responses={200: EVENT_STREAM},
    errors=(404,),
    description="`event: progress` with the job (as GET /imports/{id} shows it) whenever it changes, a "
    "comment every 15 s while nothing does, and `event: end` once it has finished (or was deleted).",
)
async def events(request: Request) -> Response:
    """Server-sent events: the job whenever it changes, then `end` once it has finished."""
    account = await current_account(request)
    ctx = request.state.ctx
    job_id = service.parse_id(request.path_params["id"])
    await service.get_job(ctx, account.id, job_id)

    async def stream() -> AsyncIterator[bytes]:
        seen = None
        quiet_since = time.monotonic()
        while True:
            try:
                job = service.public(await service.get_job(ctx, account.id, job_id))
            except service.JobNotFound:
                yield b'event: end\ndata: {"status": "deleted"}\n\n'
                return
            state = (job["status"], job["rows_processed"], job["rows_failed"], job["progress"])
            if state != seen:
                seen, quiet_since = state, time.monotonic()
                yield b"event: progress\ndata: " + dumps(job) + b"\n\n"
            if job["status"] in service.TERMINAL:
                yield b"event: end\ndata: " + dumps(job) + b"\n\n"
                return
            if time.monotonic() - quiet_since > KEEP_ALIVE:
                quiet_since = time.monotonic()
                yield b": keep-alive\n\n"
            await asyncio.sleep(EVENT_POLL)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )


routes = [
    Route("/api/v1/imports", create, methods=["POST"]),
    Route("/api/v1/imports/preview", preview, methods=["POST"]),
    Route("/api/v1/imports", list_imports, methods=["GET"]),
    Route("/api/v1/imports/{id}", get_import, methods=["GET"]),
    Route("/api/v1/imports/{id}", delete, methods=["DELETE"]),
    Route("/api/v1/imports/{id}/cancel", cancel, methods=["POST"]),
    Route("/api/v1/imports/{id}/errors", errors, methods=["GET"]),
    Route("/api/v1/imports/{id}/errors.csv", errors_csv, methods=["GET"]),
    Route("/api/v1/imports/{id}/events", events, methods=["GET"]),
    Route("/api/v1/imports/{id}/deliveries", deliveries, methods=["GET"]),
]

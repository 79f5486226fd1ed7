"""HTTP endpoints of the imports API."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from service import idempotency
from service.http.auth import current_account
from service.imports import service
from service.imports.schemas import PageQuery
from service.imports.uploads import receive_upload
from service.json import dumps, json_response
from service.notifications import webhooks

FORM_FIELDS = frozenset({"webhook_url", "dry_run"})
EVENT_POLL = 0.5
KEEP_ALIVE = 15.0


def _query(request: Request, model: type[BaseModel]) -> BaseModel:
    return model.model_validate(dict(request.query_params))


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
    outcome = await service.create_job(request.state.ctx, account.id, job_id, upload, key)
    return outcome.response()


async def list_imports(request: Request) -> Response:
    account = await current_account(request)
    query = _query(request, PageQuery)
    assert isinstance(query, PageQuery)
    return json_response(await service.list_jobs(request.state.ctx, account.id, query.limit, query.cursor))


async def get_import(request: Request) -> Response:
    account = await current_account(request)
    job = await service.get_job(request.state.ctx, account.id, service.parse_id(request.path_params["id"]))
    return json_response(service.public(job))


async def cancel(request: Request) -> Response:
    account = await current_account(request)
    job = await service.cancel_job(request.state.ctx, account.id, service.parse_id(request.path_params["id"]))
    return json_response(service.public(job), status_code=202)


async def delete(request: Request) -> Response:
    account = await current_account(request)
    await service.delete_job(request.state.ctx, account.id, service.parse_id(request.path_params["id"]))
    return Response(status_code=204)


async def errors(request: Request) -> Response:
    account = await current_account(request)
    query = _query(request, PageQuery)
    assert isinstance(query, PageQuery)
    job_id = service.parse_id(request.path_params["id"])
    return json_response(await service.errors_page(request.state.ctx, account.id, job_id, query.limit, query.cursor))


async def errors_csv(request: Request) -> Response:
    account = await current_account(request)
    job_id = service.parse_id(request.path_params["id"])
    lines = await service.errors_csv(request.state.ctx, account.id, job_id)
    return StreamingResponse(
        lines,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="import-{job_id}-errors.csv"'},
    )


async def deliveries(request: Request) -> Response:
    account = await current_account(request)
    job_id = service.parse_id(request.path_params["id"])
    await service.get_job(request.state.ctx, account.id, job_id)
    return json_response({"items": await webhooks.list_attempts(request.state.ctx, job_id, account.id)})


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
    Route("/api/v1/imports", list_imports, methods=["GET"]),
    Route("/api/v1/imports/{id}", get_import, methods=["GET"]),
    Route("/api/v1/imports/{id}", delete, methods=["DELETE"]),
    Route("/api/v1/imports/{id}/cancel", cancel, methods=["POST"]),
    Route("/api/v1/imports/{id}/errors", errors, methods=["GET"]),
    Route("/api/v1/imports/{id}/errors.csv", errors_csv, methods=["GET"]),
    Route("/api/v1/imports/{id}/events", events, methods=["GET"]),
    Route("/api/v1/imports/{id}/deliveries", deliveries, methods=["GET"]),
]

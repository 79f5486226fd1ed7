"""Bare Starlette apps that set the practical limit of this stack on this machine, for the benchmarks.

`upload_app`: a multipart body streamed to disk with python-multipart's parser and plain blocking writes
(no limits, no checks, no database): what a bare endpoint with the streaming parser achieves.
Run: uvicorn tests.perf.baseline_upload:upload_app
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

UPLOAD_DIR = Path(os.environ.get("BASELINE_UPLOAD_DIR", "/tmp/tasklane-baseline-uploads"))


async def live(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def upload(request: Request) -> Response:
    _, params = parse_options_header(request.headers["content-type"])
    UPLOAD_DIR.mkdir(parents=True, exist_ok=True)
    path = UPLOAD_DIR / uuid.uuid4().hex
    size = 0
    with open(path, "wb") as out:

        def on_part_data(data: bytes, start: int, end: int) -> None:
            nonlocal size
            size += end - start
            out.write(data[start:end])

        parser = MultipartParser(params[b"boundary"], {"on_part_data": on_part_data})
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    path.unlink()
    return JSONResponse({"size": size}, status_code=202)


upload_app = Starlette(
    routes=[Route("/health/live", live), Route("/upload", upload, methods=["POST"])],
)

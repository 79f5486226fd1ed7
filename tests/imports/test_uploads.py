"""The streaming receiver of an upload stores the file's bytes exactly, however the network cuts them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from starlette.requests import Request

from service.imports.uploads import HEAD_BYTES, receive_upload

BOUNDARY = b"tasklane-boundary-0123"


def _multipart(content: bytes, webhook_url: str) -> bytes:
    return (
        b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="webhook_url"\r\n\r\n'
        + webhook_url.encode() + b"\r\n--" + BOUNDARY
        + b'\r\nContent-Disposition: form-data; name="file"; filename="t.csv"\r\n\r\n'
        + content + b"\r\n--" + BOUNDARY + b"--\r\n"
    )  # fmt: skip


@pytest.mark.parametrize("piece", [1, 7, 64 * 1024, 3 * 1024 * 1024])
async def test_the_stored_file_is_the_sent_file_byte_for_byte(tmp_path: Path, piece: int) -> None:
    # Near-boundaries in the content make the parser hold bytes back across chunks and hand them over later.
    tricky = b"\r\n--" + BOUNDARY[:-1] + b"\r\n-" + BOUNDARY + b"x\r\n--\r"
    content = (tricky + os.urandom(997)) * (40 if piece < 1024 else 4000)
    body = _multipart(content, "https://example.com/hook")
    chunks = [body[i : i + piece] for i in range(0, len(body), piece)]

    async def receive() -> dict[str, object]:
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    headers = [(b"content-type", b"multipart/form-data; boundary=" + BOUNDARY)]
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)
    target = tmp_path / "stored"
    upload = await receive_upload(request, target, max_bytes=len(content), fields={"webhook_url"}, digest=True)

    assert target.read_bytes() == content
    assert (upload.size, upload.head, upload.filename) == (len(content), content[:HEAD_BYTES], "t.csv")
    assert upload.fields == {"webhook_url": "https://example.com/hook"}
    expected = hashlib.sha256(content + b"\0webhook_url=https://example.com/hook").hexdigest()
    assert upload.sha256 == expected

"""Streaming multipart uploads straight to disk.

python-multipart's push parser sees the body as it arrives; file bytes are buffered to ~1 MiB and written
with aiofiles, so a 500 MB upload never sits in memory, is never spooled twice (Starlette's
`request.form()` spools to a temporary file and then copies) and costs one thread hop per MiB rather
than per 64 KiB network chunk. The size cap is enforced while streaming.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import aiofiles
import aiofiles.os
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from service.errors import MalformedBody, PayloadTooLarge, Unprocessable, UnsupportedMediaType

WRITE_BUFFER = 1024 * 1024
HEAD_BYTES = 8192
# Room for the multipart framing and the small text fields around the file.
ENVELOPE_BYTES = 64 * 1024
FIELD_LIMIT = 32 * 1024  # a `mapping` for a wide export (Jira writes 100+ columns) is the largest field


class MissingFile(MalformedBody):
    slug, title = "missing-file", "No file in the upload"


@dataclass
class Upload:
    path: Path
    filename: str
    size: int = 0
    head: bytes = b""
    fields: dict[str, str] = field(default_factory=dict)
    sha256: str | None = None
    complete: bool = True  # False when the caller had `enough` of the file before its end

    async def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            await aiofiles.os.remove(self.path)


class _Receiver:
    """Turns the parser's synchronous callbacks into events handled between writes."""

    def __init__(self, path: Path, file_field: str, fields: set[str], max_bytes: int, digest: bool) -> None:
        self.path = path
        self.file_field = file_field
        self.allowed = fields
        self.max_bytes = max_bytes
        self.events: list[tuple[str, bytes | memoryview]] = []
        self.upload: Upload | None = None
        self.fields: dict[str, str] = {}
        self.hash = hashlib.sha256() if digest else None
        self.buffer = bytearray()
        self.handle: aiofiles.threadpool.binary.AsyncBufferedIOBase | None = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._target: str | None = None  # "file", a field name, or None before a part's headers end
        self._field_value = bytearray()
        self.ended = False

    def callbacks(self) -> dict[str, object]:
        def add(name: str):
            return lambda data=b"", start=0, end=0: self.events.append((name, data[start:end]))

        def add_part_data(data: bytes, start: int, end: int) -> None:
            # A view, not a copy, of the network chunk (bytes: immutable while the view lives): file bytes
            # are then copied once, into the write buffer, as a bare endpoint copies them once.
            self.events.append(("part_data", memoryview(data)[start:end] if type(data) is bytes else data[start:end]))

        callbacks: dict[str, object] = {
            f"on_{name}": add(name)
            for name in ("part_begin", "part_end", "header_field", "header_value", "header_end", "headers_finished",
                         "end")
        }  # fmt: skip
        callbacks["on_part_data"] = add_part_data
        return callbacks

    async def handle_events(self) -> None:
        events, self.events = self.events, []
        for name, data in events:
            if name == "part_data":
                await self._data(data)
            elif name == "header_field":
                self._header_field += data
            elif name == "header_value":
                self._header_value += data
            elif name == "header_end":
                self._headers[self._header_field.lower()] = self._header_value
                self._header_field = self._header_value = b""
            elif name == "headers_finished":
                await self._start_part()
            elif name == "part_end":
                await self._end_part()
            elif name == "part_begin":
                self._headers = {}
            elif name == "end":
                self.ended = True

    async def _start_part(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if disposition != b"form-data" or b"name" not in options:
            raise MalformedBody("Each multipart part needs a Content-Disposition: form-data; name=...")
        name = options[b"name"].decode("utf-8", "replace")
        if name == self.file_field:
            if b"filename" not in options:
                raise MissingFile(f"The '{self.file_field}' field must be a file")
            if self.upload is not None:
                raise MalformedBody("Send exactly one file")
            self.upload = Upload(self.path, options[b"filename"].decode("utf-8", "replace"))
            self.handle = await aiofiles.open(self.path, "wb")
            self._target = "file"
        elif name in self.allowed:
            self._target = name
            self._field_value = bytearray()
        else:
            raise Unprocessable(f"Unknown form field '{name}'", errors=[{"field": name, "message": "Unknown field"}])

    async def _data(self, data: bytes | memoryview) -> None:
        if self._target == "file":
            assert self.upload is not None
            self.upload.size += len(data)
            if self.upload.size > self.max_bytes:
                raise PayloadTooLarge(f"The file may be at most {self.max_bytes} bytes")
            if len(self.upload.head) < HEAD_BYTES:
                self.upload.head += data[: HEAD_BYTES - len(self.upload.head)]
            self.buffer += data
            if len(self.buffer) >= WRITE_BUFFER:
                await self._flush()
        elif self._target is not None:
            self._field_value += data
            if len(self._field_value) > FIELD_LIMIT:
                raise PayloadTooLarge(f"The '{self._target}' field may be at most {FIELD_LIMIT} bytes")

    async def _flush(self) -> None:
        if self.buffer and self.handle is not None:
            chunk, self.buffer = self.buffer, bytearray()  # handed to the writer thread as it is, not copied
            if self.hash is not None:
                self.hash.update(chunk)
            await self.handle.write(chunk)

    async def _end_part(self) -> None:
        if self._target == "file":
            await self._flush()
        elif self._target is not None:
            try:
                self.fields[self._target] = self._field_value.decode()
            except UnicodeDecodeError:
                raise MalformedBody(f"The '{self._target}' field is not valid UTF-8") from None
        self._target = None

    @property
    def in_file(self) -> bool:
        """Whether the file part is being received (started, not yet ended)."""
        return self._target == "file"

    async def stop_early(self) -> None:
        assert self.upload is not None
        await self._flush()
        await self.close()
        self.upload.fields = self.fields
        self.upload.complete = False

    async def close(self) -> None:
        if self.handle is not None:
            await self.handle.close()
            self.handle = None


async def receive_upload(
    request: Request,
    path: Path,
    *,
    max_bytes: int,
    file_field: str = "file",
    fields: set[str] | frozenset[str] = frozenset(),
    digest: bool = False,
    enough: Callable[[Upload], bool] | None = None,
) -> Upload:
    """Stream a multipart/form-data body: its one file to `path`, its small text `fields` into memory.
    With `digest`, the SHA-256 of file and fields is computed on the way (for idempotency fingerprints).
    With `enough`, reading stops as soon as it says the file received so far is enough (`complete` is then
    False, and fields sent after the file are not seen); the rest of the body is left unread, for the
    server to discard once the response is sent. Any failure removes what was written."""
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data":
        raise UnsupportedMediaType("Send the file as multipart/form-data")
    boundary = params.get(b"boundary")
    if not boundary:
        raise MalformedBody("The multipart Content-Type has no boundary")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + ENVELOPE_BYTES:
        raise PayloadTooLarge(f"The file may be at most {max_bytes} bytes")

    receiver = _Receiver(path, file_field, set(fields), max_bytes, digest)
    parser = MultipartParser(boundary, receiver.callbacks())  # type: ignore[arg-type]
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + ENVELOPE_BYTES:
                raise PayloadTooLarge(f"The file may be at most {max_bytes} bytes")
            parser.write(chunk)
            await receiver.handle_events()
            if enough is not None and receiver.in_file and enough(receiver.upload):  # type: ignore[arg-type]
                await receiver.stop_early()
                return receiver.upload
        parser.finalize()
        await receiver.handle_events()
        if not receiver.ended:
            raise MalformedBody("The multipart body ended before its closing boundary")
        upload = receiver.upload
        if upload is None:
            raise MissingFile(f"Attach the file in a form field named '{file_field}'")
        await receiver.close()
        upload.fields = receiver.fields
        if receiver.hash is not None:
            for name in sorted(receiver.fields):
                receiver.hash.update(f"\0{name}={receiver.fields[name]}".encode())
            upload.sha256 = receiver.hash.hexdigest()
        return upload
    except MultipartParseError as exc:
        await _abort(receiver, path)
        raise MalformedBody(f"Malformed multipart body: {exc}") from None
    except (Exception, ClientDisconnect):
        await _abort(receiver, path)
        raise


async def _abort(receiver: _Receiver, path: Path) -> None:
    await receiver.close()
    with contextlib.suppress(FileNotFoundError):
        await aiofiles.os.remove(path)


async def until_disconnected(request: Request) -> NoReturn:
    """Raises ClientDisconnect once the client has gone. For after the body was read: the server then
    answers `receive` only when the connection closes (or the response is complete)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    raise ClientDisconnect

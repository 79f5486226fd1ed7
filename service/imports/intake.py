"""What happens to an upload before it becomes a job: its kind, the checks made at upload, the preview, and
the transfer of its staging file into the upload store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from service.context import Context
from service.errors import Unavailable, Unprocessable, UnsupportedMediaType
from service.imports.files import (
    EmptyFile,
    Kind,
    MappingError,
    Options,
    UnreadableFile,
    UnsupportedFile,
    open_reader,
    parse_options,
    sniff,
)
from service.imports.files.csv_reader import SAMPLE_BYTES
from service.imports.files.preview import preview
from service.imports.files.sniff import EXTENSIONS, extension
from service.imports.uploads import Upload
from service.storage import StoreUnavailable, TransferStopped

STORE_RETRY_AFTER = 10  # seconds a client is asked to wait when the upload store is away
log = logging.getLogger("tasklane.imports")
# A workbook is loaded whole to read its first rows (calamine reads no other way): one at a time per web
# process, so previews and checks at upload cannot add up to several workbooks in memory.
_WORKBOOK_SLOT = threading.BoundedSemaphore(1)


class StoreDown(Unavailable):
    slug, title = "upload-store-unavailable", "Upload store unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"Retry-After": str(STORE_RETRY_AFTER)})


def store_down(ctx: Context, exc: StoreUnavailable, doing: str) -> StoreDown:
    log.warning("upload store unavailable", extra={"store": ctx.store.kind, "error": str(exc)})
    return StoreDown(f"The upload store cannot {doing} right now; try again shortly")


def parse_bool(name: str, value: str | None) -> bool:
    if value is None or value.strip().lower() in {"", "false", "0", "no", "off"}:
        return False
    if value.strip().lower() in {"true", "1", "yes", "on"}:
        return True
    raise Unprocessable(f"{name} must be true or false", errors=[{"field": name, "message": "Must be true or false"}])


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


async def put_upload(
    ctx: Context, stored: str, upload: Upload, abandoned: Callable[[], Awaitable[NoReturn]] | None
) -> None:
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
        raise store_down(ctx, exc, "take the file") from None
    finally:
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)

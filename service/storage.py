"""Where uploads live between the web process that received them and the worker that imports them.

One small interface, two stores, chosen by UPLOAD_STORE_URL:

- `file:///folder` (the default: UPLOAD_DIR): the staging file is moved into the folder and a worker reads
  it there. Web and worker processes must see the same folder (one host, or a shared volume).
- `s3://bucket/prefix`: any S3-compatible object store (AWS S3, R2, MinIO, B2, GCS in interoperability
  mode), through obstore (Rust's object_store). Web and worker share nothing on disk: the web process sends
  its staging file as a multipart upload, a worker copies the object to a private temporary file.

Every transfer runs in obstore's own threads or in a thread hop per block: the event loop never waits on
the store or the disk. A store that cannot be reached, or refuses, raises StoreUnavailable; an object that
is not there raises FileNotFoundError.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

import aiofiles
import aiofiles.os
import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.exceptions import NotFoundError
from obstore.store import S3Store

from service.config import Settings, upload_store_url

log = logging.getLogger("tasklane.storage")
BLOCK_BYTES = 1024 * 1024  # read from or written to local disk per thread hop
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's smallest part (but the last)
MAX_PARTS = 10_000  # S3's most parts in one upload
PARTS_IN_FLIGHT = 4  # memory per upload: about this many parts, never the file
PROBE_KEY = "readiness-probe"  # never written: a HEAD answered 404 shows the store answers
PROBE_TIMEOUT = 2.0
PROBE_TTL = 5.0  # seconds a readiness answer is reused, so probes never hammer the store


class StoreUnavailable(Exception):
    """The upload store could not be reached or refused the request: worth trying again later."""


class TransferStopped(Exception):
    """A `put` was asked to stop (its `stop` event was set) and aborted what it had sent."""


@dataclass(frozen=True)
class LocalCopy:
    """An upload as a file a reader can open (calamine wants one it can seek in)."""

    path: Path
    temporary: bool

    async def discard(self) -> None:
        if self.temporary:
            with contextlib.suppress(FileNotFoundError):
                await aiofiles.os.remove(self.path)


class UploadStore(Protocol):
    kind: str  # "local" or "s3", for logs and readiness

    async def put(self, key: str, source: Path, stop: asyncio.Event | None = None) -> None:
        """Store the file at `source` under `key`; the caller removes `source` if it is still there. Once
        `stop` is set, the transfer ends with TransferStopped and nothing stored."""

    async def fetch(self, key: str, scratch: Path) -> LocalCopy:
        """The object as a local file (a copy under `scratch` unless the store is a local folder)."""

    async def delete(self, key: str) -> None:
        """Remove the object; an object already gone is not an error."""

    async def ready(self) -> bool:
        """Whether the store answers, from one cheap request at most every PROBE_TTL seconds."""


class _CachedProbe:
    """One probe at a time, its answer reused for PROBE_TTL seconds."""

    def __init__(self) -> None:
        self._at = float("-inf")
        self._ok = False
        self._running: asyncio.Future[bool] | None = None

    async def _probe(self) -> None:
        raise NotImplementedError

    async def _run(self) -> bool:
        try:
            await asyncio.wait_for(self._probe(), PROBE_TIMEOUT)
            ok = True
        except Exception as exc:
            log.warning("upload store unavailable", extra={"error": type(exc).__name__})
            ok = False
        self._at, self._ok, self._running = time.monotonic(), ok, None
        return ok

    async def ready(self) -> bool:
        if time.monotonic() - self._at < PROBE_TTL:
            return self._ok
        if self._running is None:
            self._running = asyncio.ensure_future(self._run())
        # Shielded: a caller giving up (its own timeout) does not cut the probe short for the others.
        return await asyncio.shield(self._running)


class LocalFolderStore(_CachedProbe):
    kind = "local"

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def _path(self, key: str) -> Path:
        # Keys are file names. Jobs created before keys held the full path of their file in this same
        # folder: its last part is the key. Either way, nothing outside the folder can be named.
        return self.root / Path(key).name

    async def put(self, key: str, source: Path, stop: asyncio.Event | None = None) -> None:
        # Moments, not a transfer: `stop` has nothing to cut short.
        await asyncio.to_thread(os.makedirs, self.root, exist_ok=True)
        # A rename when both are on one filesystem, as they are by default (UPLOAD_DIR for both).
        await asyncio.to_thread(shutil.move, source, self._path(key))

    async def fetch(self, key: str, scratch: Path) -> LocalCopy:
        path = self._path(key)
        if not await aiofiles.os.path.isfile(path):
            raise FileNotFoundError(key)
        return LocalCopy(path, temporary=False)

    async def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            await aiofiles.os.remove(self._path(key))

    async def _probe(self) -> None:
        if not await asyncio.to_thread(os.access, self.root, os.W_OK | os.X_OK):
            raise StoreUnavailable(f"{self.root} is not a writable folder")


class ObjectStore(_CachedProbe):
    """An S3-compatible bucket (and prefix), through obstore."""

    kind = "s3"

    def __init__(self, settings: Settings, bucket: str, prefix: str) -> None:
        super().__init__()
        endpoint = settings.s3_endpoint_url
        given = {
            "endpoint": endpoint,
            "access_key_id": settings.aws_access_key_id,
            "secret_access_key": settings.aws_secret_access_key,
            "session_token": settings.aws_session_token,
            "region": settings.aws_region,
        }
        # Unset values are left to obstore, which also reads the AWS_* environment and, on AWS, the
        # instance or task role.
        self.store = S3Store(
            bucket,
            prefix=prefix or None,
            client_options={
                "allow_http": endpoint.startswith("http://"),
                "connect_timeout": timedelta(seconds=5),
                # Per request: one part, or a whole object read by a worker.
                "timeout": timedelta(seconds=300),
            },
            # A store that is down answers the web process within seconds (it then says 503); workers
            # wait for it with a backoff of their own (pipeline).
            retry_config={
                "max_retries": 3,
                "retry_timeout": timedelta(seconds=10),
                "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2)},
            },
            **{name: value for name, value in given.items() if value},  # type: ignore[arg-type]
        )

    async def put(self, key: str, source: Path, stop: asyncio.Event | None = None) -> None:
        size = (await aiofiles.os.stat(source)).st_size
        part = max(MIN_PART_BYTES, -(-size // MAX_PARTS))
        try:
            # A file smaller than one part goes up in one PUT; a larger one as a multipart upload with a
            # few parts in flight (a write waits while PARTS_IN_FLIGHT are). The upload is aborted when
            # the block raises, so no part is left in the bucket. A stop is checked between writes
            # rather than by cancelling one: a write cancelled while it creates the multipart upload
            # would lose the upload's id, and with it the means to abort it.
            async with (
                obstore.open_writer_async(self.store, key, buffer_size=part, max_concurrency=PARTS_IN_FLIGHT) as out,
                aiofiles.open(source, "rb") as f,
            ):
                while block := await f.read(BLOCK_BYTES):
                    if stop is not None and stop.is_set():
                        raise TransferStopped(key)
                    await out.write(block)
        except (ObstoreError, OSError) as exc:  # the writer reports the store's failures as OSError
            raise StoreUnavailable(_reason(exc)) from None
        if stop is not None and stop.is_set():
            # Asked to stop while the last parts were completing: the object is whole, so delete it.
            await self.delete(key)
            raise TransferStopped(key)

    async def fetch(self, key: str, scratch: Path) -> LocalCopy:
        await aiofiles.os.makedirs(scratch, exist_ok=True)
        # The pid in the name lets a worker that starts later remove what a killed one left (clear_scratch).
        path = scratch / f"{os.getpid()}-{Path(key).name}"
        try:
            result = await obstore.get_async(self.store, key)
            written = 0
            async with aiofiles.open(path, "wb") as f:
                async for chunk in result.stream(min_chunk_size=BLOCK_BYTES):
                    written += await f.write(chunk)
            if written != result.meta["size"]:
                raise StoreUnavailable(f"read {written} of {result.meta['size']} bytes")
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                await aiofiles.os.remove(path)
            if isinstance(exc, NotFoundError | FileNotFoundError):
                raise FileNotFoundError(key) from None
            if isinstance(exc, ObstoreError | OSError):
                raise StoreUnavailable(_reason(exc)) from None
            raise
        return LocalCopy(path, temporary=True)

    async def delete(self, key: str) -> None:
        try:
            await obstore.delete_async(self.store, key)
        except (NotFoundError, FileNotFoundError):
            pass
        except ObstoreError as exc:
            raise StoreUnavailable(_reason(exc)) from None

    async def _probe(self) -> None:
        with contextlib.suppress(NotFoundError, FileNotFoundError):
            await obstore.head_async(self.store, PROBE_KEY)


def _reason(exc: Exception) -> str:
    # obstore's messages name the request (method, URL without credentials) and what went wrong; the
    # debug dump that follows them is left out of logs and errors.
    return str(exc).split("\n", 1)[0][:500]


def open_store(settings: Settings) -> UploadStore:
    url = urlsplit(settings.upload_store_url or upload_store_url("", settings.upload_dir))
    if url.scheme == "s3":
        return ObjectStore(settings, url.netloc, url.path.strip("/"))
    return LocalFolderStore(Path(url.path))


def scratch_dir(settings: Settings) -> Path:
    """Where a worker keeps its copies of objects while it imports them: its own disk."""
    return Path(settings.upload_dir) / "scratch"


def clear_scratch(scratch: Path) -> int:
    """Remove copies left by worker processes that no longer run (killed mid-import); returns how many."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in scratch.iterdir():
            pid, _, _ = entry.name.partition("-")
            if pid.isdigit() and not process_alive(int(pid)):
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed += 1
    return removed


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

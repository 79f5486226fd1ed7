"""The upload stores tests run against: a local folder, or a real S3 HTTP API on loopback (moto's server,
reached over HTTP exactly as AWS or MinIO would be; nothing in the code under test is patched).

`TEST_UPLOAD_STORE=s3` makes the S3 store the one every test uses (`make test` runs the import suites a
second time that way); tests that need S3 whatever the mode take the `s3` fixture.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from service.config import Settings
from service.storage import scratch_dir
from tests.support import free_port

BUCKET = "tasklane-test-uploads"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test-access-key", "AWS_SECRET_ACCESS_KEY": "test-secret-key"}
REGION = "us-east-1"
logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request at INFO


def s3_mode() -> bool:
    return os.environ.get("TEST_UPLOAD_STORE", "local") == "s3"


class S3Server:
    """moto's S3 server in a thread of this process, on a fixed free port, with one bucket. `stop()` closes
    the port (requests are refused, as with a store that is down) and `start()` opens it again; the
    bucket's contents survive, as they would on a real store."""

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._server: ThreadedMotoServer | None = None
        self._lock = threading.Lock()
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> S3Server:
        with self._lock:
            if self._server is None:
                server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
                server.start()
                self._server = server
                if not any(b["Name"] == BUCKET for b in self.client.list_buckets().get("Buckets", [])):
                    self.client.create_bucket(Bucket=BUCKET)
        return self

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.stop()
                self._server = None

    def env(self, prefix: str) -> dict[str, str]:
        """The settings that point tasklane at this server, under `prefix` in the bucket."""
        return {
            "UPLOAD_STORE_URL": f"s3://{BUCKET}/{prefix}",
            "S3_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            **CREDENTIALS,
        }

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def uploads(self, prefix: str = "") -> list[dict[str, Any]]:
        """Multipart uploads begun and neither completed nor aborted."""
        return self.client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads", [])

    def clear(self) -> None:
        for upload in self.uploads():
            self.client.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"], UploadId=upload["UploadId"])
        for key in self.keys():
            self.client.delete_object(Bucket=BUCKET, Key=key)


class SlowLink:
    """A TCP proxy in front of a server that passes bytes towards it at `rate` bytes per second: a slow
    network, so that a test can act while a transfer is in flight. Answers come back at full speed."""

    def __init__(self, target_port: int, rate: float) -> None:
        self.target_port, self.rate = target_port, rate
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, self.rate), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, None), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, rate: float | None) -> None:
        try:
            while data := source.recv(16384):
                if rate:
                    time.sleep(len(data) / rate)  # the link's bandwidth, not a wait for anything
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed.set()
        self.listener.close()


_shared: S3Server | None = None


def shared_s3() -> S3Server:
    """The one S3 server of this test session, started on first use."""
    global _shared
    if _shared is None:
        _shared = S3Server()
    return _shared.start()


def stored_uploads(settings: Settings) -> list[str]:
    """What the configured upload store holds: object keys, or file names in the local folder (the
    workers' scratch folder aside)."""
    if settings.upload_store_url.startswith("s3://"):
        prefix = settings.upload_store_url.removeprefix(f"s3://{BUCKET}").strip("/")
        server = shared_s3()
        return server.keys(prefix + "/") + [u["Key"] for u in server.uploads(prefix + "/")]
    scratch = scratch_dir(settings)
    return sorted(p.name for p in Path(settings.upload_dir).glob("*") if p != scratch)

"""Imports as a platform runs them: web and worker processes in separate "containers" that share no disk.

Each process gets its own empty tmpfs over UPLOAD_DIR (and TMPDIR) in a mount namespace of its own, so a
file one of them writes there does not exist for any other. Uploads travel through the S3 store (moto's
server over HTTP); PostgreSQL is reached with the URL shape platforms hand out (postgres://, sslmode).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid

import asyncpg
import httpx
import pytest

from tests.imports.helpers import write_xlsx
from tests.processes import ROOT, mount_namespace, running_stack
from tests.stores import SlowLink
from tests.support import eventually, signup, wait_job

ROWS = 60_000
BAD_EVERY = 1_000  # every 1000th row has an impossible priority
XLSX_ROWS = 3_000
ENV = {
    "IMPORT_CHUNK_ROWS": "2000",
    "BROKER_HEARTBEAT_TIMEOUT_MS": "2000",
    "IMPORT_STALE_AFTER": "3",
    "RELAY_GRACE": "1",
    "RELAY_INTERVAL": "0.5",
}


def platform_database_url() -> str:
    """The test database as a platform writes its URL: the old `postgres://` scheme and an sslmode."""
    return os.environ["TEST_DATABASE_URL"].replace("postgresql://", "postgres://", 1) + "?sslmode=disable"


def big_csv() -> bytes:
    lines = ["title,priority,category"]
    lines += [f"Task {i},{9 if i % BAD_EVERY == 0 else i % 5 + 1},Cat {i % 7}" for i in range(ROWS)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.slow
async def test_imports_complete_when_web_and_worker_share_no_disk(tmp_path, clean, database, smtp, s3):
    prefix = f"no-shared-disk-{uuid.uuid4().hex[:8]}"
    uploads = tmp_path / "uploads"  # the same path in every process, a different disk in each
    uploads.mkdir()
    env = {
        **ENV,
        **s3.env(prefix),
        "UPLOAD_DIR": str(uploads),
        "TMPDIR": str(uploads),
        "DATABASE_URL": platform_database_url(),
    }
    # The release step with the platform's URL
    subprocess.run([sys.executable, "-m", "service.migrate"], env={**os.environ, **env}, cwd=ROOT, check=True)
    conn = await asyncpg.connect(database)
    with running_stack(tmp_path, **env) as stack:
        web, url = stack.web(private=[uploads])
        first = stack.worker(processes=1, threads=2, private=[uploads])
        namespaces = {mount_namespace(p.popen.pid) for p in (web, first)} | {mount_namespace(os.getpid())}
        assert len(namespaces) == 3, "each process has a disk of its own"
        try:
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                headers = await signup(http, smtp, "paas@example.com")

                # A 60,000-row CSV, its worker SIGKILLed mid-import and a new one started in a new "container"
                response = await http.post(
                    "/api/v1/imports", files={"file": ("big.csv", big_csv(), "text/csv")}, headers=headers
                )
                assert response.status_code == 202, response.text
                csv_id = response.json()["id"]
                five = "SELECT count(*) >= 5 FROM import_chunks WHERE job_id = $1"
                await eventually(lambda: conn.fetchval(five, csv_id), 60, "5 chunks to commit", every=0.01)
                first.kill()
                assert await conn.fetchval("SELECT status FROM import_jobs WHERE id = $1", csv_id) == "processing"
                stack.worker(processes=1, threads=2, private=[uploads])
                job = await wait_job(http, headers, csv_id, timeout=90)
                bad = ROWS // BAD_EVERY
                assert job["status"] == "completed", job
                assert (job["rows_processed"], job["rows_imported"], job["rows_failed"]) == (ROWS, ROWS - bad, bad)
                assert await conn.fetchval("SELECT count(DISTINCT title) FROM tasks") == ROWS - bad
                assert await conn.fetchval("SELECT attempts FROM import_jobs WHERE id = $1", csv_id) >= 2

                # An xlsx (calamine reads it from the worker's private copy)
                rows = [["Title", "Priority"]] + [
                    [f"Sheet task {i}", 9 if i % 100 == 0 else 2] for i in range(XLSX_ROWS)
                ]
                sheet = write_xlsx(tmp_path, rows).read_bytes()
                response = await http.post(
                    "/api/v1/imports",
                    files={"file": ("tasks.xlsx", sheet, "application/octet-stream")},
                    headers=headers,
                )
                job = await wait_job(http, headers, response.json()["id"], timeout=90)
                assert (job["status"], job["rows_imported"], job["rows_failed"]) == ("completed", 2_970, 30), job

            # errors.csv from a web process that never saw the file
            _other, other_url = stack.web(private=[uploads])
            async with httpx.AsyncClient(base_url=other_url, timeout=60) as http:
                response = await http.get(f"/api/v1/imports/{csv_id}/errors.csv", headers=headers)
            assert response.status_code == 200
            lines = response.text.lstrip("\ufeff").splitlines()
            assert lines[0] == "title,priority,category,error" and len(lines) == 1 + bad
            assert lines[1].startswith("Task 0,9,Cat 0,")
        finally:
            await conn.close()

    # Nothing left: no object, no multipart upload, and nothing on the disk this process sees
    assert s3.keys(prefix) == [] and s3.uploads(prefix) == []
    assert list(uploads.iterdir()) == []


@pytest.mark.slow
async def test_a_client_that_disconnects_mid_transfer_leaves_no_object(tmp_path, clean, database, smtp, s3):
    prefix = f"disconnect-{uuid.uuid4().hex[:8]}"
    link = SlowLink(s3.port, rate=2_000_000)  # ~2 MB/s towards the store: the transfer lasts seconds
    uploads = tmp_path / "uploads"
    env = {**ENV, **s3.env(prefix), "S3_ENDPOINT_URL": link.endpoint, "UPLOAD_DIR": str(uploads)}
    try:
        with running_stack(tmp_path, **env) as stack:
            web, url = stack.web()
            stack.worker()
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                headers = await signup(http, smtp, "gone@example.com")
            # ~30 MB: more than the parts a transfer keeps in flight, so the transfer is still going on
            content = b"title,description\n" + b"".join(b"Task %d,%s\n" % (i, b"x" * 2000) for i in range(15_000))
            port = int(url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(multipart_request(headers, content))
                # The whole body is sent; wait until the web process has begun the multipart upload...
                await eventually(lambda: s3.uploads(prefix), 30, "a multipart upload to begin", every=0.02)

            # ...then go away without reading the answer. Once the web process has ended the request, the
            # transfer is aborted and nothing is kept.
            def ended() -> list[dict]:
                return [line for line in web.logs() if line.get("route") == "/api/v1/imports"]

            await eventually(ended, 60, "the upload request to end")
            assert s3.uploads(prefix) == [] and s3.keys(prefix) == []
            conn = await asyncpg.connect(database)
            try:
                assert await conn.fetchval("SELECT count(*) FROM import_jobs") == 0
            finally:
                await conn.close()
            assert list(uploads.glob("*.part")) == []
    finally:
        link.close()


def multipart_request(headers: dict[str, str], content: bytes) -> bytes:
    boundary = "tasklane-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        "POST /api/v1/imports HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body

"""Bulk import figures, each against a baseline measured in the same run:

- upload: a 500 MB multipart upload, server MB/s and web RSS growth, against a bare Starlette endpoint
  with the streaming parser; plus GET /health/live p99 during the upload;
- CSV: 1,000,000 rows from upload to `completed`, rows/s, against psql COPY of the same file into an
  index-free table, and against a plain COPY of the same validated rows into tasks (binary, 10,000-row
  transactions, as the worker writes them);
- Excel: a 1,000,000-row xlsx from upload to `completed`, rows/s and the worker's peak RSS;

the imports into a database of the current schema ("after") and of the schema before issue 16 (migration
0008, "before"; the current code serves it, its later migrations being only recorded, as imports write
the same columns).

Run: python -m tests.perf.bench_imports [--rows 1000000] [--no-upload]
     (files are generated once under /tmp/tasklane-bench)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from service.accounts.passwords import hash_password_sync
from service.imports.chunks import TASK_COLUMNS, category_names, task_records
from service.imports.files import open_reader
from service.tasks.service import category_ids
from tests.perf.bench_readers import CACHE, csv_fixture, xlsx_fixture
from tests.perf.common import (
    BEFORE_16,
    BIN,
    PG,
    ROOT,
    Figure,
    bench_env,
    fresh_database,
    percentile,
    print_table,
    serve_as_current,
    server,
    server_process,
    uvicorn,
)
from tests.support import drop_database

ROWS = 1_000_000
UPLOAD_MB = 500
EMAIL, PASSWORD = "bench@example.com", "secret123"


def upload_fixture() -> Path:
    """~500 MB of valid CSV (so tasklane accepts it as a CSV upload)."""
    path = CACHE / f"upload-{UPLOAD_MB}mb.csv"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        line = b"Task with a reasonably long title,Some description text here,todo,3,2026-01-01,Work\n"
        with open(path, "wb") as f:
            f.write(b"title,description,status,priority,due_date,category\n")
            block = line * 10_000
            for _ in range(UPLOAD_MB * 1024 * 1024 // len(block)):
                f.write(block)
    return path


def rss_peak_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def rss_now_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def curl_upload(url: str, path: Path, headers: dict[str, str]) -> tuple[float, int, str]:
    """POST the file as multipart with curl (C, so the client is not the bottleneck); (seconds, status, body)."""
    argv = ["curl", "-s", "-o", "/dev/stdout", "-w", "\n%{http_code} %{time_total}", "-F", f"file=@{path}", url]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    out = subprocess.run(argv, capture_output=True, check=True, text=True).stdout
    body, _, tail = out.rpartition("\n")
    status, seconds = tail.split()
    return float(seconds), int(status), body


async def make_user(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO accounts (email, password_hash, is_active) VALUES ($1, $2, true)",
            EMAIL,
            hash_password_sync(PASSWORD, 4),
        )
    finally:
        await conn.close()


def login(url: str) -> dict[str, str]:
    token = httpx.post(f"{url}/api/v1/auth/login", json={"email": EMAIL, "password": PASSWORD}).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


class Prober(threading.Thread):
    """GET /health/live back to back while something else runs; latencies in ms."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.samples, self.stop = url, [], threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                http.get("/health/live")
                self.samples.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.005)


def measure_upload(env: dict[str, str]) -> list[Figure]:
    path = upload_fixture()
    size_mb = path.stat().st_size / 1e6
    with server(uvicorn("tests.perf.baseline_upload:upload_app"), env) as base_url:
        curl_upload(f"{base_url}/upload", path, {})  # warm the page cache
        base_seconds = min(curl_upload(f"{base_url}/upload", path, {})[0] for _ in range(2))
    with server_process(uvicorn("service.app:create_app", "--factory"), env) as (url, pid):
        headers = login(url)
        before = rss_now_kb(pid)
        prober = Prober(url)
        prober.start()
        time.sleep(0.5)
        runs = []
        for _ in range(2):
            seconds, status, body = curl_upload(f"{url}/api/v1/imports", path, headers)
            assert status == 202, body
            runs.append(seconds)
            # No worker runs here; delete the job so the import measurements below start with an empty queue.
            httpx.delete(f"{url}/api/v1/imports/{orjson.loads(body)['id']}", headers=headers).raise_for_status()
        prober.stop.set()
        prober.join()
        growth_mb = (rss_peak_kb(pid) - before) / 1024
    return [
        Figure("upload 500 MB: throughput", size_mb / min(runs), size_mb / base_seconds, ">= 60% of baseline", "MB/s"),
        Figure("upload 500 MB: web RSS growth", growth_mb, None, "< 50 MB", "MB"),
        Figure("health p99 during the upload", percentile(prober.samples, 99), None, "< 25 ms", "ms"),
    ]


def wait_completed(url: str, headers: dict[str, str], job_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/api/v1/imports/{job_id}", headers=headers).json()
        if job["status"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise RuntimeError(f"import {job_id} did not finish")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def import_file(
    url: str, headers: dict[str, str], path: Path, worker_pid: int
) -> tuple[float, dict[str, Any], int, float]:
    """Upload and wait for completion; (seconds, final job, peak RSS of the busiest worker child in kB, CPU
    seconds of the worker's children meanwhile: what the import cost the worker, whatever else ran)."""
    workers = children(worker_pid)
    cpu0 = sum(cpu_seconds(child) for child in workers)
    t0 = time.perf_counter()
    _, status, body = curl_upload(f"{url}/api/v1/imports", path, headers)
    assert status == 202, body
    job_id = orjson.loads(body)["id"]
    job = wait_completed(url, headers, job_id)
    elapsed = time.perf_counter() - t0
    peak = max((rss_peak_kb(child) for child in children(worker_pid)), default=0)
    return elapsed, job, peak, sum(cpu_seconds(child) for child in workers) - cpu0


def psql_copy_seconds(database_url: str, path: Path) -> float:
    table = "bench_copy"
    subprocess.run(
        ["psql", database_url, "-q", "-c",
         f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (title text, description text, status text, "
         "priority smallint, due_date date, category text)"],
        check=True,
    )  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(["psql", database_url, "-q", "-c", f"\\copy {table} FROM '{path}' CSV HEADER"], check=True)
    return time.perf_counter() - t0


async def plain_copy_seconds(database_url: str, path: Path) -> float:
    """The file's validated rows COPY'd into tasks as the worker writes them (the worker's own records,
    category ids and import id included: binary, one transaction per 10,000 rows), the file read and the
    categories found untimed: what the table accepts, without the pipeline. The rows and categories are
    then removed, so that the imports that follow start from the same empty table."""
    conn = await asyncpg.connect(database_url)
    elapsed = 0.0
    try:
        user_id = await conn.fetchval("SELECT id FROM accounts WHERE email = $1", EMAIL)
        job = {"id": uuid.uuid4(), "user_id": user_id}  # import_id is a plain column (no foreign key: 0007)
        with open_reader(path, "csv") as reader:
            for chunk in reader.chunks(size=10_000):
                names = category_names(chunk)
                found = await category_ids(conn, user_id, names)
                records = task_records(job, chunk, {name: found[name.lower()] for name in names})
                t0 = time.perf_counter()
                async with conn.transaction():
                    await conn.copy_records_to_table("tasks", columns=TASK_COLUMNS, records=records)
                elapsed += time.perf_counter() - t0
        await conn.execute("TRUNCATE tasks")
        await conn.execute("DELETE FROM categories WHERE user_id = $1", user_id)
    finally:
        await conn.close()
    return elapsed


def measure_imports(schema: str, database_url: str, env: dict[str, str], rows: int) -> dict[str, float]:
    """CSV and xlsx imports of `rows` rows into one database, and the plain COPY of the same rows."""
    csv_path, xlsx_path = csv_fixture(rows), xlsx_fixture(rows)
    copy_seconds = asyncio.run(plain_copy_seconds(database_url, csv_path))
    worker = subprocess.Popen(
        [str(BIN / "dramatiq"), "workers", "--processes", "1", "--threads", "2"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(3)
        with server(uvicorn("service.app:create_app", "--factory"), env) as url:
            headers = login(url)
            csv_seconds, csv_job, _, csv_cpu = import_file(url, headers, csv_path, worker.pid)
            xlsx_seconds, xlsx_job, xlsx_rss, _ = import_file(url, headers, xlsx_path, worker.pid)
    finally:
        worker.terminate()
        worker.wait(30)
    for job in (csv_job, xlsx_job):
        assert job["status"] == "completed" and job["rows_imported"] == rows, job
    print(
        f"{schema}: CSV {rows / csv_seconds:,.0f} rows/s, xlsx {rows / xlsx_seconds:,.0f} rows/s, "
        f"plain COPY {rows / copy_seconds:,.0f} rows/s, worker CPU of the CSV import {csv_cpu * 1e6 / rows:.2f} µs/row",
        flush=True,
    )
    return {
        "csv": rows / csv_seconds,
        "xlsx": rows / xlsx_seconds,
        "copy": rows / copy_seconds,
        "rss": xlsx_rss,
        "csv_cpu": csv_cpu * 1e6 / rows,
    }


def import_figures(rows: int, psql: float, by_schema: dict[str, dict[str, float]]) -> list[Figure]:
    before, after = by_schema["before"], by_schema["after"]
    return [
        Figure(f"CSV import {rows:,} rows, upload to completed: after vs before", after["csv"], before["csv"],
               ">= 1.8", "rows/s"),
        Figure("CSV import as a share of psql COPY of the file into an index-free table: after vs before",
               after["csv"] / psql, before["csv"] / psql, ">= 0.07 (0.039)", "ratio"),
        Figure("CSV import vs a plain COPY of the same rows into tasks as migrated (after)", after["csv"],
               after["copy"], ">= 0.9", "rows/s"),
        Figure("CSV import vs a plain COPY of the same rows into tasks as migrated (before)", before["csv"],
               before["copy"], "-", "rows/s"),
        Figure("CSV import: worker CPU per row, after vs before (schema)",
               after["csv_cpu"], before["csv_cpu"], "-", "µs"),
        Figure("psql COPY of the file into an index-free table", psql, None, "-", "rows/s"),
        Figure(f"xlsx import {rows:,} rows, upload to completed: after vs before", after["xlsx"], before["xlsx"],
               "-", "rows/s"),
        Figure("xlsx import: worker peak RSS, after vs before", after["rss"] / 1024, before["rss"] / 1024,
               "< 768 MB", "MB"),
    ]  # fmt: skip


async def prepare(schema: str) -> tuple[str, dict[str, str]]:
    """A database of the current schema ("after") or of the schema before issue 16 ("before"), with the
    bench user, and the environment of processes serving it."""
    if schema == "before":
        database_url = await fresh_database("tasklane_bench_imports_before", until=BEFORE_16)
        await serve_as_current(database_url)
    else:
        database_url = await fresh_database("tasklane_bench_imports")
    await make_user(database_url)
    uploads = tempfile.mkdtemp(prefix="tasklane-bench-uploads-")
    env = bench_env(
        database_url, 9, UPLOAD_DIR=uploads, MAX_UPLOAD_BYTES=str(600 * 1024 * 1024), DATABASE_POOL_MAX="10"
    )
    return database_url, env


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--no-upload", action="store_true", help="skip the 500 MB upload figures")
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    if not args.no_upload:
        database_url, env = asyncio.run(prepare("after"))
        try:
            figures = measure_upload(env)
        finally:
            asyncio.run(drop_database(database_url))
        print_table("Uploads (baseline: bare Starlette endpoint with the streaming parser)", figures)
    by_schema: dict[str, dict[str, float]] = {}
    psql = 0.0
    for schema in ("before", "after"):
        database_url, env = asyncio.run(prepare(schema))
        try:
            if not psql:
                psql = args.rows / min(psql_copy_seconds(database_url, csv_fixture(args.rows)) for _ in range(2))
            by_schema[schema] = measure_imports(schema, database_url, env, args.rows)
        finally:
            asyncio.run(drop_database(database_url))
    imports = import_figures(args.rows, psql, by_schema)
    print_table(f"Imports of {args.rows:,} rows, after issue 16 (baseline: before, same run)", imports)
    return [f.row() for f in figures + imports]


if __name__ == "__main__":
    os.environ.setdefault("BENCH_PG", PG)
    main()

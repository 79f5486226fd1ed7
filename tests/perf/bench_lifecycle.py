"""Platform lifecycle figures (issue 12), each against a baseline measured in the same run:

- worker stop: SIGTERM to every process of the worker command's group in the middle of an import, until
  the last process has exited (baseline: the same stop of an idle worker);
- web stop: SIGTERM to the web command's group, one process and two (baseline: the bare `uvicorn` command);
- resume: from starting a new worker until the import a stopped one handed back commits its next chunk
  (baseline: the new worker's own start-up, until "ready for action"); goal under 10 s;
- fair workers: imports running at once with 2 processes x 2 threads and 4 uploads (goal 4);
- broker: a CSV import upload-to-completed on RabbitMQ against Redis, in A-B-B-A order (goal >= 0.95x).

Run: python -m tests.perf.bench_lifecycle [--rows 1000000] [--stops 3]
Databases and Redis db carry BENCH_SLOT (default 12), so concurrent runs on one machine do not collide.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pika

from tests.perf.bench_imports import curl_upload, login, make_user, wait_completed
from tests.perf.bench_readers import csv_fixture
from tests.perf.common import BIN, ROOT, Figure, bench_env, fresh_database, print_table
from tests.processes import Stack

SLOT = os.environ.get("BENCH_SLOT", "12")
RABBITMQ_URL = os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
STOP_ROWS = 300_000


def until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not after {timeout} s")
        time.sleep(every)
    return value


class Db:
    """A synchronous view of the bench database (the figures are taken from plain threads)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: asyncpg.Connection = self.loop.run_until_complete(asyncpg.connect(url))

    def value(self, sql: str, *args: Any) -> Any:
        return self.loop.run_until_complete(self.conn.fetchval(sql, *args))

    def close(self) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


def upload(url: str, headers: dict[str, str], path: Path) -> str:
    _, status, body = curl_upload(f"{url}/api/v1/imports", path, headers)
    assert status == 202, body
    return orjson.loads(body)["id"]


def chunks(db: Db, job_id: str) -> int:
    return db.value("SELECT count(*) FROM import_chunks WHERE job_id = $1", job_id)


def measure_stops(stack: Stack, db: Db, stops: int) -> list[Figure]:
    idle = []
    for _ in range(stops):
        worker = stack.worker(processes=2, threads=2)
        idle.append(worker.stop_group()[1])
    _web, url = stack.web()
    headers = login(url)
    job_id = upload(url, headers, csv_fixture(STOP_ROWS))
    busy, resumes, boots = [], [], []
    worker = stack.worker(processes=2, threads=2)
    for _ in range(stops):
        target = chunks(db, job_id) + 3
        until(lambda target=target: chunks(db, job_id) >= target, 120, "chunks before the stop")
        code, took = worker.stop_group()
        assert code == 0, worker.text()[-2000:]
        busy.append(took)
        status, lease = db.value("SELECT (status, lease_id) FROM import_jobs WHERE id = $1", job_id)
        assert status == "queued" and lease is None, (status, lease)
        done, started = chunks(db, job_id), time.monotonic()
        worker = stack.worker(processes=2, threads=2)
        boots.append(time.monotonic() - started)
        until(lambda done=done: chunks(db, job_id) > done, 60, "the import to resume")
        resumes.append(time.monotonic() - started)
    wait_completed(url, headers, job_id)
    worker.stop_group()
    return [
        Figure("worker group SIGTERM -> every process exited, mid-import (baseline idle)",
               statistics.median(busy), statistics.median(idle), "< 30 s, exit 0", "s"),
        Figure("worker group SIGTERM -> exited, slowest of the stops", max(busy), max(idle), "< 30 s", "s"),
        Figure("restart -> handed-back import resumes (baseline: worker start-up)",
               statistics.median(resumes), statistics.median(boots), "< 10 s", "s"),
        Figure("restart -> resume, slowest", max(resumes), max(boots), "< 10 s", "s"),
    ]  # fmt: skip


def bare_uvicorn_stop(env: dict[str, str], port: int) -> float:
    argv = [str(BIN / "uvicorn"), "service.app:create_app", "--factory", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    until(lambda: _answers(f"http://127.0.0.1:{port}"), 30, "bare uvicorn", every=0.1)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)
    return time.monotonic() - t0


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health/live", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def measure_web_stops(stack: Stack, env: dict[str, str], stops: int) -> list[Figure]:
    from tests.support import free_port

    bare = statistics.median(bare_uvicorn_stop(env, free_port()) for _ in range(stops))
    figures = []
    for processes in (1, 2):
        times, codes = [], set()
        for _ in range(stops):
            web, _url = stack.web(workers=processes)
            code, took = web.stop_group()
            times.append(took)
            codes.add(code)
        figures.append(Figure(f"web group SIGTERM -> exited, {processes} process(es), exit codes {sorted(codes)}",
                              statistics.median(times), bare, "exit 0", "s"))  # fmt: skip
    return figures


def measure_fairness(stack: Stack, db: Db) -> list[Figure]:
    _web, url = stack.web()
    headers = login(url)
    worker = stack.worker(processes=2, threads=2)
    path = csv_fixture(100_000)
    jobs = [upload(url, headers, path) for _ in range(4)]
    peak, deadline = 0, time.monotonic() + 60
    while time.monotonic() < deadline:
        running = db.value("SELECT count(*) FROM import_jobs WHERE status = 'processing'")
        peak = max(peak, running)
        if peak == 4 or db.value("SELECT count(*) FROM import_jobs WHERE status = 'completed'") >= 4:
            break
        time.sleep(0.02)
    pids = {line["pid"] for line in worker.logs() if line.get("message") == "import started"}
    for job_id in jobs:
        wait_completed(url, headers, job_id)
    worker.stop_group()
    return [Figure(f"imports running at once, 2 processes x 2 threads, 4 uploads ({len(pids)} processes used)",
                   peak, None, "4")]  # fmt: skip


def delete_queues(prefix: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        for queue in ("emails", "imports", "webhooks"):
            for suffix in ("", ".DQ", ".XQ"):
                connection.channel().queue_delete(f"{prefix}{queue}{suffix}")
    finally:
        connection.close()


def measure_brokers(workdir: Path, env: dict[str, str], db: Db, rows: int) -> list[Figure]:
    path = csv_fixture(rows)
    prefix = f"bench{SLOT}.{os.getpid()}."
    brokers = {"redis": {}, "rabbitmq": {"BROKER_URL": RABBITMQ_URL, "BROKER_QUEUE_PREFIX": prefix}}
    seconds: dict[str, list[float]] = {"redis": [], "rabbitmq": []}
    try:
        for n, name in enumerate(("redis", "rabbitmq", "rabbitmq", "redis")):
            db.value("TRUNCATE tasks, import_jobs CASCADE")  # each run starts from the same table
            (workdir / f"{n}-{name}").mkdir()
            stack = Stack({**env, **brokers[name]}, workdir / f"{n}-{name}")
            try:
                _web, url = stack.web()
                headers = login(url)
                stack.worker(processes=1, threads=2)
                t0 = time.perf_counter()
                job = wait_completed(url, headers, upload(url, headers, path))
                seconds[name].append(time.perf_counter() - t0)
                assert job["status"] == "completed" and job["rows_imported"] == rows, job
            finally:
                stack.stop_all()
            print(f"  {name}: {rows / seconds[name][-1]:,.0f} rows/s")
    finally:
        delete_queues(prefix)
    redis_rate, rabbitmq_rate = (rows / statistics.mean(seconds[n]) for n in ("redis", "rabbitmq"))
    return [Figure(f"CSV import {rows:,} rows on RabbitMQ (baseline: Redis), A-B-B-A", rabbitmq_rate, redis_rate,
                   ">= 0.95 x baseline", "rows/s")]  # fmt: skip


async def prepare() -> tuple[str, dict[str, str]]:
    database_url = await fresh_database(f"tasklane_bench_lifecycle_{SLOT}")
    await make_user(database_url)
    uploads = tempfile.mkdtemp(prefix="tasklane-bench-uploads-")
    env = bench_env(database_url, int(SLOT) % 16, UPLOAD_DIR=uploads, LOG_LEVEL="INFO", IMPORT_CHUNK_ROWS="10000")
    return database_url, env


def main() -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the RabbitMQ/Redis import")
    parser.add_argument("--stops", type=int, default=3, help="stops measured per figure")
    args = parser.parse_args()
    database_url, env = asyncio.run(prepare())
    workdir = Path(tempfile.mkdtemp(prefix="tasklane-bench-lifecycle-"))
    db = Db(database_url)
    figures: list[Figure] = []
    try:
        stack = Stack(env, workdir)
        try:
            figures += measure_stops(stack, db, args.stops)
            figures += measure_web_stops(stack, env, args.stops)
            figures += measure_fairness(stack, db)
        finally:
            stack.kill_all()
        figures += measure_brokers(workdir, env, db, args.rows)
    finally:
        db.close()
    print_table("Platform lifecycle (baselines measured in the same run)", figures)
    return [f.row() for f in figures]


if __name__ == "__main__":
    main()

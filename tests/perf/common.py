"""Shared pieces of the benchmark scripts: a scratch database, server processes, latency figures and a
table. Benchmarks print ratios against a baseline measured in the same run; they assert nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from service.migrate import CREATE_TABLE, MIGRATIONS_DIR, RECORD, discover, migrate
from tests.support import drop_database, free_port, recreate_database

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
# Appended to the name of every database a benchmark creates (and BENCH_REDIS_DB, the Redis database its
# processes use), so that runs sharing a server never share one.
SUFFIX = os.environ.get("BENCH_DB_SUFFIX", "")
# The last migration before issue 16 (half the cost per task row, word search): its benchmarks measure
# that schema next to the current one in the same run.
BEFORE_16 = "0008_import_options"


@dataclass
class Figure:
    figure: str
    tasklane: float
    baseline: float | None
    goal: str
    unit: str = ""

    @property
    def ratio(self) -> float | None:
        return self.tasklane / self.baseline if self.baseline else None

    def row(self) -> dict[str, Any]:
        return {"figure": self.figure, "tasklane": self.tasklane, "baseline": self.baseline,
                "ratio": self.ratio, "goal": self.goal, "unit": self.unit}  # fmt: skip


def print_table(title: str, figures: list[Figure]) -> None:
    print(f"\n{title}")
    print(f"{'figure':<58} {'tasklane':>12} {'baseline':>12} {'ratio':>7}  goal")
    for f in figures:
        base = _number(f.baseline) if f.baseline is not None else "-"
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "-"
        name = f"{f.figure} ({f.unit})" if f.unit else f.figure
        print(f"{name:<58} {_number(f.tasklane):>12} {base:>12} {ratio:>7}  {f.goal}")


def _number(value: float) -> str:
    return f"{value:,.1f}" if abs(value) >= 1 else f"{value:.3g}"


def database_url(name: str) -> str:
    return f"{PG}/{name}{SUFFIX}"


def migrations_until(version: str) -> Path:
    """A directory with the migrations up to `version`: the schema as it was then."""
    target = Path(tempfile.mkdtemp(prefix="tasklane-migrations-"))
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.stem <= version:
            shutil.copy(path, target)
    return target


async def fresh_database(name: str, *, until: str | None = None) -> str:
    """A new, migrated database (up to the migration `until` when given)."""
    url = database_url(name)
    await recreate_database(url)
    directory = migrations_until(until) if until else MIGRATIONS_DIR
    try:
        await migrate(url, directory)
    finally:
        if until:
            shutil.rmtree(directory)
    return url


async def copy_database(template_url: str, name: str) -> str:
    """A new database copied from another (sessions on the template are ended first): seeding once for
    several schemas or runs. Much faster than seeding again, as files are copied."""
    url = database_url(name)
    await drop_database(url)
    template = template_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(f"{PG}/postgres")
    try:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", template)
        await admin.execute(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    return url


async def serve_as_current(url: str) -> None:
    """Record the migrations a database lacks as applied, without applying them, so that the current
    code agrees to serve a database of an older schema. Only for measuring the paths whose statements
    did not change with those migrations (POST /tasks, GET /tasks without filters, imports)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(CREATE_TABLE)
        applied = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for m in discover():
            if m.version not in applied:
                await conn.execute(RECORD, m.version, m.checksum)
    finally:
        await conn.close()


def bench_env(database_url: str, redis_db: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        APP_ENV="test",
        DATABASE_URL=database_url,
        REDIS_URL=f"redis://127.0.0.1:6379/{os.environ.get('BENCH_REDIS_DB', redis_db)}",
        SECRET_KEY="bench-secret-key-that-is-long-enough-0123456789",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextmanager
def server(argv: list[str], env: dict[str, str], ready_path: str = "/health/live") -> Iterator[str]:
    """Run an ASGI server (argv gets --port appended) until the block ends; yields its base URL."""
    with server_process(argv, env, ready_path) as (url, _pid):
        yield url


@contextmanager
def server_process(argv: list[str], env: dict[str, str], ready_path: str = "/health/live") -> Iterator[tuple[str, int]]:
    """As `server`, yielding (base URL, process id)."""
    port = free_port()
    proc = subprocess.Popen([*argv, "--port", str(port)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "server exited")
            try:
                if httpx.get(url + ready_path, timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def uvicorn(app: str, *flags: str) -> list[str]:
    return [str(BIN / "uvicorn"), app, "--host", "127.0.0.1", "--workers", "1", "--no-access-log", *flags]


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


@dataclass
class Load:
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms)


async def closed_loop(url: str, method: str, path: str, concurrency: int, seconds: float, **request: Any) -> Load:
    """`concurrency` clients each sending back-to-back requests for `seconds`."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        stop = time.perf_counter() + seconds

        async def one() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                response = await http.request(method, path, **request)
                latencies.append((time.perf_counter() - t0) * 1000)
                if response.status_code >= 400:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return Load(len(latencies), elapsed, latencies, errors)

"""Throughput and latency of GET /tasks and POST /tasks, next to a bare raw-asyncpg baseline.

    python -m tests.perf.bench_tasks [--tasks 100000] [--connections 16] [--duration 5] [--rounds 3]
                                     [--after-only]

For each of two schemas, the one before issue 16 (migration 0008, "before": the current code serves it,
its later migrations only recorded, as these two endpoints read and write the same columns) and the
current one ("after"): creates its own database (`tasklane_bench`, dropped at the end), migrates it,
seeds the bench user's tasks with COPY, then starts three single-worker uvicorn servers as subprocesses
on free loopback ports: tasklane itself and `tests/perf/baseline_tasks.py` (same SELECT/INSERT through a
raw asyncpg pool, no middleware/auth/validation: the practical limit of this stack) twice, with asyncpg's
default pool and with a pool that skips the reset query on release as tasklane's does (like for like).
Each endpoint is loaded in turn, the servers alternating, by wrk when installed (else an asyncio httpx
client), from this second process. Prints a table per schema and how the ratios to the baseline moved;
`main()` returns the figures for a report script. Not a test: numbers depend on the machine, so nothing
here asserts on them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from service.accounts.tokens import create_access_token
from tests.perf.common import BEFORE_16, database_url, serve_as_current
from tests.perf.seed import create_database, create_user, seed_tasks
from tests.support import drop_database

SECRET_KEY = "bench-secret-key-that-is-long-enough-0123456789"
GET_GOAL = 0.70
# The baseline again with its pool releasing connections as tasklane's does, without asyncpg's reset
# query (a round trip per request): the like-for-like comparison, printed next to the plain one.
NO_RESET = "baseline-no-reset"
POST_BODY = b'{"title": "Benchmark task", "priority": 2, "status": "in_progress"}'
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def server(target: str, env: dict[str, str], log: Path) -> Iterator[str]:
    """A single-worker uvicorn serving `target` (an app factory) on a free port; yields its base URL."""
    port = free_port()
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                target,
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--no-access-log",
                "--no-server-header",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,  # tasklane's JSON request log: written, as in production, then dropped
            stderr=err,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{target} exited with {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{target} did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


_WRK_LATENCY = re.compile(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, method: str, headers: dict[str, str], body: bytes | None, conns: int, duration: float) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "{method}"\n')
        for name, value in headers.items():
            script.write(f'wrk.headers["{name}"] = "{value}"\n')
        if body is not None:
            script.write(f"wrk.body = [[{body.decode()}]]\n")
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    latency = {p: float(v) * _UNIT_MS[u] for p, v, u in _WRK_LATENCY.findall(out)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return Result(rps, latency["50"], latency["99"], errors)


async def _run_httpx(url: str, method: str, headers: dict[str, str], body: bytes | None, conns: int, duration: float):
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        stop = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                response = await client.request(method, url, headers=headers, content=body)
                latencies.append(time.perf_counter() - t0)
                errors += response.status_code >= 400

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conns)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return Result(len(latencies) / elapsed, pick(0.50), pick(0.99), errors)


def load(url: str, method: str, headers: dict[str, str], body: bytes | None, conns: int, duration: float) -> Result:
    if shutil.which("wrk"):
        return run_wrk(url, method, headers, body, conns, duration)
    return asyncio.run(_run_httpx(url, method, headers, body, conns, duration))


async def prepare(url: str, tasks: int, before: bool) -> uuid.UUID:
    await create_database(url, until=BEFORE_16 if before else None)
    if before:
        await serve_as_current(url)
    conn = await asyncpg.connect(url)
    try:
        user_id = await create_user(conn, "bench@example.com")
        await seed_tasks(conn, user_id, tasks)
        # Other users' tasks, so the user_id prefix of every index actually selects.
        for i in range(2):
            other = await create_user(conn, f"other{i}@example.com")
            await seed_tasks(conn, other, max(tasks // 4, 1), seed=i + 2)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return user_id


METRICS = (("rps", "requests/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"))
Endpoint = tuple[str, str, str, dict[str, str], bytes | None]  # figure name, method, path, headers, body


def measure(
    env: dict[str, str], endpoints: list[Endpoint], conns: int, duration: float, rounds: int
) -> dict[tuple[str, str], list[Result]]:
    """Each endpoint on every server, alternating run by run so that drift hits them alike."""
    results: dict[tuple[str, str], list[Result]] = {}
    baseline = "tests.perf.baseline_tasks:create_app"
    with (
        tempfile.TemporaryDirectory() as tmp,
        server("service.app:create_app", env, Path(tmp) / "tasklane.log") as tasklane,
        server(baseline, env, Path(tmp) / "baseline.log") as plain,
        server(baseline, {**env, "BENCH_POOL_RESET": "off"}, Path(tmp) / "baseline-no-reset.log") as no_reset,
    ):
        bases = {"tasklane": tasklane, "baseline": plain, NO_RESET: no_reset}
        for name, method, path, headers, body in endpoints:
            for base in bases.values():  # warm-up: connections, prepared statements, caches
                load(base + path, method, headers, body, conns, 2)
            for _ in range(rounds):
                for which, base in bases.items():
                    result = load(base + path, method, headers, body, conns, duration)
                    if result.errors:
                        raise RuntimeError(f"{which} {name}: {result.errors} failed requests")
                    results.setdefault((name, which), []).append(result)
    return results


def fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "-"
    return {"rps": f"{value:,.0f}", "ms": f"{value:.2f}", "ratio": f"{value:.0%}"}[kind]


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", database_url("tasklane_bench")))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measured run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per server and endpoint (median is kept)")
    parser.add_argument("--after-only", action="store_true", help="skip the schema before issue 16")
    parser.add_argument("--keep-database", action="store_true")
    args = parser.parse_args(argv)
    tool = "wrk" if shutil.which("wrk") else "httpx"
    by_schema = {
        schema: run_schema(args, schema == "before")
        for schema in (("after",) if args.after_only else ("before", "after"))
    }
    print(
        f"\n{args.tasks:,} tasks for the user; 1 uvicorn worker each; {tool}, {args.connections} connections, "
        f"{args.rounds} x {args.duration:g} s per figure (median)"
    )
    figures: list[dict[str, Any]] = []
    for schema, rows in by_schema.items():
        print(f"\nschema {schema} issue 16\n")
        print_figures(rows)
        figures += [{**f, "figure": f"{f['figure']} ({schema} issue 16)"} for f in rows]
    if len(by_schema) == 2:
        print("\nafter vs before (ratio to the bare baseline, after / before): throughput must not drop")
        for before, after in zip(by_schema["before"], by_schema["after"], strict=True):
            if "requests/s" in before["figure"] and before["ratio"]:
                print(f"  {before['figure']:<62} {after['ratio'] / before['ratio']:.2f}")
    return figures


def run_schema(args: argparse.Namespace, before: bool) -> list[dict[str, Any]]:
    url = args.database_url + ("_before" if before else "")
    print(f"seeding {args.tasks:,} tasks into {url.rsplit('/', 1)[-1]} ...", flush=True)
    user_id = asyncio.run(prepare(url, args.tasks, before))
    token = create_access_token(SECRET_KEY, user_id, 3600).token
    env = {
        "APP_ENV": "production",
        "DATABASE_URL": url,
        "REDIS_URL": args.redis_url,
        "SECRET_KEY": SECRET_KEY,
        "WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"bench-webhook-secret-0123456789ab").decode(),
        "METRICS_TOKEN": "bench-metrics-token",
        "LOG_LEVEL": "INFO",
        "BENCH_DATABASE_URL": url,
        "BENCH_USER_ID": str(user_id),
    }
    auth = {"Authorization": f"Bearer {token}"}
    endpoints: list[Endpoint] = [
        ("GET /tasks?limit=20", "GET", "/api/v1/tasks?limit=20", auth, None),
        ("POST /tasks", "POST", "/api/v1/tasks", {**auth, "Content-Type": "application/json"}, POST_BODY),
    ]
    try:
        results = measure(env, endpoints, args.connections, args.duration, args.rounds)
    finally:
        if not args.keep_database:
            asyncio.run(drop_database(url))

    figures: list[dict[str, Any]] = []
    for name, *_ in endpoints:
        rows = [(metric, label, "baseline", "") for metric, label in METRICS]
        rows.insert(1, ("rps", "requests/s", NO_RESET, " (baseline without reset query)"))
        for metric, label, base_name, suffix in rows:
            ours = statistics.median(getattr(r, metric) for r in results[(name, "tasklane")])
            base = statistics.median(getattr(r, metric) for r in results[(name, base_name)])
            goal = f">= {GET_GOAL:.2f}" if (name.startswith("GET") and metric == "rps") else "-"
            figures.append(
                {
                    "figure": f"{name} {label}{suffix}",
                    "tasklane": round(ours, 2),
                    "baseline": round(base, 2),
                    "ratio": round(ours / base, 3) if base else None,
                    "goal": goal,
                }
            )
    return figures


def print_figures(figures: list[dict[str, Any]]) -> None:
    header = f"{'figure':<62} {'tasklane':>10} {'baseline':>10} {'ratio':>7} {'goal':>7}"
    print(header)
    print("-" * len(header))
    for f in figures:
        kind = "rps" if "requests/s" in f["figure"] else "ms"
        print(
            f"{f['figure']:<62} {fmt(f['tasklane'], kind):>10} {fmt(f['baseline'], kind):>10} "
            f"{fmt(f['ratio'], 'ratio'):>7} {f['goal']:>7}"
        )


if __name__ == "__main__":
    main()

"""Cost of the metrics middleware: requests/s and p99 of a cheap authenticated GET with METRICS_ENABLED
on and off, in the same run (two servers side by side, measured in alternating rounds so drift of the
machine hits both alike). Goal: metrics on keeps at least 95 % of the throughput of metrics off.

Also the middleware's own time per request, measured in-process around a do-nothing ASGI app (the
request path does dict increments only; Redis is written by the background flusher). Goal: p99 < 1 ms.

Run: python -m tests.perf.bench_metrics [--path /api/v1/tasks?limit=20] [--seconds 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from typing import Any

import asyncpg

from service.accounts import passwords, tokens
from service.http.middleware import RequestContextMiddleware
from service.metrics.recorder import Recorder
from tests.perf.common import Figure, Load, bench_env, closed_loop, fresh_database, percentile, print_table, server
from tests.perf.common import uvicorn as uvicorn_argv

DEFAULT_PATH = "/api/v1/users/me"
CONCURRENCY = 8
SECONDS = 2.5
ROUNDS = 8


async def _bearer_token(database_url: str, secret: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        account_id = await conn.fetchval(
            "INSERT INTO accounts (email, password_hash, is_active, activated_at) VALUES ($1, $2, true, now()) "
            "RETURNING id",
            f"{uuid.uuid4().hex}@bench.example",
            passwords.hash_password_sync("bench-password-1", 4),
        )
    finally:
        await conn.close()
    return tokens.create_access_token(secret, account_id, 3600).token


async def _middleware_overhead_us(n: int = 100_000) -> tuple[float, float]:
    """p50 and p99 (µs) of the metrics' own time: the request middleware around a do-nothing app with a
    recorder, minus the same without one."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    class Route:
        path = DEFAULT_PATH

    async def send(message: Any) -> None:
        return None

    async def receive() -> Any:
        return {"type": "http.request"}

    bare = RequestContextMiddleware(app)
    wrapped = RequestContextMiddleware(app, recorder=Recorder())

    async def timings(target: Any) -> list[float]:
        out = []
        for _ in range(n):
            scope = {"type": "http", "method": "GET", "path": DEFAULT_PATH, "route": Route, "headers": []}
            t0 = time.perf_counter()
            await target(scope, receive, send)
            out.append((time.perf_counter() - t0) * 1e6)
        return out

    await timings(wrapped)  # warm-up
    without, with_metrics = await timings(bare), await timings(wrapped)
    return (
        percentile(with_metrics, 50) - percentile(without, 50),
        percentile(with_metrics, 99) - percentile(without, 99),
    )


def _pid_listening_on(url: str) -> int | None:
    """The process holding the listening socket of `url` (Linux /proc), to read its CPU time."""
    port = int(url.rsplit(":", 1)[1])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                    inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in {f"socket:[{i}]" for i in inodes}:
                    return int(pid)
        except OSError:
            continue
    return None


def _cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _merge(loads: list[Load]) -> Load:
    return Load(
        sum(x.requests for x in loads),
        sum(x.seconds for x in loads),
        [ms for x in loads for ms in x.latencies_ms],
        sum(x.errors for x in loads),
    )


async def measure(path: str, seconds: float, rounds: int) -> list[Figure]:
    p50_us, p99_us = await _middleware_overhead_us()
    database_url = await fresh_database("tasklane_bench_metrics")
    env_on = bench_env(database_url, 13, METRICS_ENABLED="true", RELAY_GRACE="3600")
    env_off = bench_env(database_url, 13, METRICS_ENABLED="false", RELAY_GRACE="3600")
    token = await _bearer_token(database_url, env_on["SECRET_KEY"])
    headers = {"Authorization": f"Bearer {token}"}
    argv = uvicorn_argv("service.app:create_app", "--factory")
    runs: dict[str, list[Load]] = {"on": [], "off": []}
    cpu = {"on": 0.0, "off": 0.0}
    with server(argv, env_on) as url_on, server(argv, env_off) as url_off:
        # Many short alternating rounds and medians: on a shared 2-core machine one long run per mode
        # mostly measures whatever else the machine was doing at that moment.
        urls = {"on": url_on, "off": url_off}
        pids = {mode: _pid_listening_on(u) for mode, u in urls.items()}
        for mode in ("off", "on"):  # warm-up: connections, prepared statements, JIT-free but cache-warm
            await closed_loop(urls[mode], "GET", path, CONCURRENCY, 1.0, headers=headers)
        for n in range(rounds):
            order = ("off", "on") if n % 2 == 0 else ("on", "off")
            for mode in order:
                before = _cpu_seconds(pids[mode])
                runs[mode].append(await closed_loop(urls[mode], "GET", path, CONCURRENCY, seconds, headers=headers))
                cpu[mode] += _cpu_seconds(pids[mode]) - before
    on, off = _merge(runs["on"]), _merge(runs["off"])
    errors = on.errors + off.errors
    rps_on = statistics.median(x.rps for x in runs["on"])
    rps_off = statistics.median(x.rps for x in runs["off"])
    pairs = [a.rps / b.rps for a, b in zip(runs["on"], runs["off"], strict=True)]
    print(f"path {path}: {on.requests} requests with metrics on, {off.requests} off, {errors} errors")
    print("rounds (req/s): on " + ", ".join(f"{x.rps:,.0f}" for x in runs["on"])
          + " | off " + ", ".join(f"{x.rps:,.0f}" for x in runs["off"]))  # fmt: skip
    print(f"on/off ratio per round pair: {', '.join(f'{r:.3f}' for r in pairs)}; median {statistics.median(pairs):.3f}")
    # Server CPU time per request: what throughput is made of on a CPU-bound server, and far less
    # disturbed than wall-clock rates by other work on the machine.
    cpu_on, cpu_off = (cpu[m] / max(sum(x.requests for x in runs[m]), 1) * 1e6 for m in ("on", "off"))
    return [
        Figure(f"GET {path} CPU/request, metrics on (baseline off)", cpu_on, cpu_off, "<= 1.05 x baseline", "µs"),
        Figure(f"GET {path} req/s, metrics on (baseline off)", rps_on, rps_off, ">= 0.95 x baseline", "req/s"),
        Figure(f"GET {path} p99, metrics on (baseline off)", on.p(99), off.p(99), "-", "ms"),
        Figure(f"GET {path} p50, metrics on (baseline off)", on.p50, off.p50, "-", "ms"),
        Figure("metrics middleware own time per request p99", p99_us, None, "< 1000 µs", "µs"),
        Figure("metrics middleware own time per request p50", p50_us, None, "-", "µs"),
    ]


def main(path: str = DEFAULT_PATH, seconds: float = SECONDS, rounds: int = ROUNDS) -> list[dict[str, Any]]:
    figures = asyncio.run(measure(path, seconds, rounds))
    print_table(f"Metrics middleware cost on GET {path} ({CONCURRENCY} clients, same run)", figures)
    return [f.row() for f in figures]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=DEFAULT_PATH, help="an authenticated GET, e.g. /api/v1/tasks?limit=20")
    parser.add_argument("--seconds", type=float, default=SECONDS, help="length of one measured round")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="alternating rounds per mode")
    args = parser.parse_args()
    main(args.path, args.seconds, args.rounds)

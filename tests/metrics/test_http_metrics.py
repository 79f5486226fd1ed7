"""Per-route HTTP metrics: counted by route template, once, across "processes" sharing one Redis."""

from __future__ import annotations

import asyncio
import dataclasses

import redis.asyncio as aioredis
import redis.exceptions

from service.metrics import recorder as recorder_module
from service.metrics.recorder import Recorder, latency_key
from service.metrics.snapshot import read_snapshot
from tests.metrics.conftest import read, reset_metrics
from tests.support import AppClient, active_account, bearer, free_port


async def test_requests_are_counted_per_route_template_method_and_status_class(metrics_client, app_client, smtp):
    tokens = await active_account(metrics_client, app_client.ctx, smtp, "mia@example.com")
    await reset_metrics(app_client)  # count from here on
    for _ in range(3):
        assert (await metrics_client.get("/api/v1/users/me", headers=bearer(tokens))).status_code == 200
    assert (await metrics_client.get("/api/v1/users/me")).status_code == 401
    assert (await metrics_client.delete("/api/v1/auth/login")).status_code == 405
    for path in ("/nope", "/api/v1/users/someone/else", "/wp-login.php"):
        assert (await metrics_client.get(path)).status_code == 404
    assert (await metrics_client.request("BREW", "/coffee")).status_code == 404

    routes = (await read(metrics_client))["routes"]
    me = routes["GET /api/v1/users/me"]
    assert me["route"] == "/api/v1/users/me" and me["method"] == "GET"
    assert me["count"] == 4
    assert me["by_status_class"] == {"2xx": 3, "3xx": 0, "4xx": 1, "5xx": 0}
    assert me["window"]["count"] == 4
    assert 0 < me["window"]["p50_ms"] <= me["window"]["p95_ms"] <= me["window"]["p99_ms"] < 5000
    # A wrong method on a known path keeps its template; paths that match nothing share one label,
    # and so do methods nobody routes, whatever a client invents.
    assert routes["DELETE /api/v1/auth/login"]["by_status_class"]["4xx"] == 1
    assert routes["GET <unmatched>"]["count"] == 3
    assert routes["OTHER <unmatched>"]["count"] == 1
    assert not any("wp-login" in key or "someone" in key for key in routes)
    # Reading the metrics is not counted.
    assert not any("metrics" in key for key in routes)
    assert (await read(metrics_client))["routes"]["GET /api/v1/users/me"]["count"] == 4


async def test_a_failing_recorder_never_fails_the_request(metrics_client, app_client, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("metrics broke")

    monkeypatch.setattr(app_client.state["metrics"], "observe", boom)
    response = await metrics_client.get("/health/live")
    assert response.status_code == 200


async def test_two_processes_flush_into_one_redis_and_the_sum_is_exact(metrics_client, settings, app_client):
    async with AppClient.start(settings) as a, AppClient.start(settings) as b:
        assert a.state["metrics"] is not b.state["metrics"]
        await asyncio.gather(*(a.http.get("/health/live") for _ in range(7)))
        await asyncio.gather(*(b.http.get("/health/live") for _ in range(5)))
        await asyncio.gather(*(b.http.get("/api/v1/users/me") for _ in range(2)))
        # Each flushes on its own (as its background flusher would), then either one reads the sum.
        assert await a.state["metrics"].flush(a.state["redis"])
        assert await b.state["metrics"].flush(b.state["redis"])
        for reader in (a.http, b.http, metrics_client):
            routes = (await read(reader))["routes"]
            assert routes["GET /health/live"]["count"] == 12
            assert routes["GET /health/live"]["window"]["count"] == 12
            assert routes["GET /api/v1/users/me"]["by_status_class"]["4xx"] == 2
        # Flushing again adds nothing.
        assert await a.state["metrics"].flush(a.state["redis"])
        assert (await read(a.http))["routes"]["GET /health/live"]["count"] == 12


def _dead_redis() -> aioredis.Redis:
    return aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)


async def test_failed_flush_keeps_the_deltas_and_applies_them_once_redis_is_back(metrics_client, app_client, caplog):
    real = app_client.state["redis"]
    dead = _dead_redis()
    rec = Recorder()
    for _ in range(4):
        rec.observe("GET", "/api/v1/things", 200, 0.004)
    rec.observe("GET", "/api/v1/things", 503, 0.020)
    assert await rec.flush(dead) is False
    assert await rec.flush(dead) is False
    assert rec.failures == 2
    # One warning for a run of failures, not one per flush.
    assert sum("metrics flush failed" in r.message for r in caplog.records) == 1
    rec.observe("GET", "/api/v1/things", 200, 0.004)  # counted while Redis is away
    assert rec.pending_size() > 0
    assert await rec.flush(real) is True
    assert rec.failures == 0 and rec.pending_size() == 0
    assert await rec.flush(real) is True  # nothing left: applies nothing twice
    routes = {f"{r.method} {r.route}": r for r in (await read_snapshot(real, None)).routes}
    things = routes["GET /api/v1/things"]
    assert things.count == 6
    assert things.by_status_class == {"2xx": 5, "3xx": 0, "4xx": 0, "5xx": 1}
    assert things.window_count == 6
    await dead.aclose()


async def test_a_flush_whose_reply_was_lost_is_not_applied_twice(metrics_client, app_client, monkeypatch):
    real = app_client.state["redis"]
    rec = Recorder()
    rec.observe("POST", "/api/v1/things", 201, 0.01)
    original = Recorder._apply
    calls = 0

    async def applied_then_timed_out(self, client, batch):
        nonlocal calls
        calls += 1
        await original(self, client, batch)
        if calls == 1:
            raise redis.exceptions.TimeoutError("reply lost after EXEC")

    monkeypatch.setattr(Recorder, "_apply", applied_then_timed_out)
    assert await rec.flush(real) is False  # it did reach Redis, but this process cannot know
    rec.observe("POST", "/api/v1/things", 201, 0.01)
    assert await rec.flush(real) is True  # resends the same batch (skipped), then the new one
    routes = {f"{r.method} {r.route}": r for r in (await read_snapshot(real, None)).routes}
    assert routes["POST /api/v1/things"].count == 2


async def test_pending_latency_stays_bounded_while_redis_is_away(metrics_client, monkeypatch):
    dead = _dead_redis()
    rec = Recorder()
    now = 1_000_000 * 60.0
    monkeypatch.setattr(recorder_module.time, "time", lambda: now)
    for minute in range(30):  # half an hour of traffic with Redis down
        now = (1_000_000 + minute) * 60.0
        for ms in (1, 5, 20, 100):
            rec.observe("GET", "/api/v1/things", 200, ms / 1000)
        await rec.flush(dead)
    inflight = rec.inflight.latency if rec.inflight else {}
    minutes = {key[0] for key in rec.pending.latency} | {key[0] for key in inflight}
    # The batch frozen at the first failure, plus at most the read window of newer minutes.
    assert len(minutes) <= 1 + recorder_module.WINDOW_MINUTES + 1
    assert len(rec.pending.http) == 1
    await dead.aclose()


async def test_latency_keys_expire_a_few_minutes_after_their_minute(metrics_client, app_client):
    real = app_client.state["redis"]
    rec = Recorder()
    rec.observe("GET", "/api/v1/things", 200, 0.003)
    assert await rec.flush(real)
    minute = recorder_module.current_minute()
    ttl = await real.ttl(latency_key(minute))
    assert 6 * 60 < ttl <= 8 * 60


async def test_known_latencies_give_sane_percentiles_through_redis(metrics_client, app_client):
    real = app_client.state["redis"]
    rec = Recorder()
    for ms in range(1, 101):  # 1 .. 100 ms
        rec.observe("GET", "/api/v1/slow", 200, ms / 1000)
    assert await rec.flush(real)
    route = (await read(metrics_client))["routes"]["GET /api/v1/slow"]["window"]
    assert route["count"] == 100
    for key, true in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99)):
        assert abs(route[key] - true) / true < 0.05, (key, route[key])


async def test_metrics_disabled_records_no_routes_but_keeps_counters(metrics_client, settings):
    async with AppClient.start(dataclasses.replace(settings, metrics_enabled=False)) as app:
        assert (await app.http.get("/health/live")).status_code == 200
        data = await read(app.http)
        assert data["routes"] == {}
        assert data["counters"]["registrations"] == 0

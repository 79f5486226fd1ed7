"""The two endpoints: the bearer token, the Prometheus exposition, and Redis away at read time."""

from __future__ import annotations

import dataclasses
import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service import metrics
from tests.metrics.conftest import read
from tests.support import AppClient, assert_problem, free_port

TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture
async def guarded(metrics_client, settings):
    async with AppClient.start(dataclasses.replace(settings, metrics_token=TOKEN)) as app:
        yield app.http


@pytest.mark.parametrize("path", ["/api/v1/metrics", "/metrics"])
async def test_metrics_token_is_required_when_set(guarded, path):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await guarded.get(path, headers=headers)
        assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await guarded.get(path, headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200


async def test_without_a_token_the_endpoints_are_open(metrics_client):
    assert (await metrics_client.get("/api/v1/metrics")).status_code == 200
    assert (await metrics_client.get("/metrics")).status_code == 200


async def test_json_lists_every_counter_and_queue_even_at_zero(metrics_client):
    data = await read(metrics_client)
    assert data["counters"] == dict.fromkeys(metrics.COUNTERS, 0)
    assert set(data["workers"]["queues"]) == {"emails", "imports", "webhooks"}
    assert data["workers"]["queues"]["emails"] == {
        "ready": 0,
        "delayed": 0,
        "in_flight": 0,
        "dead_letter": 0,
        "oldest_age_seconds": None,
    }
    assert data["workers"]["jobs_processing"] == 0
    assert data["window_seconds"] == 300 and data["unavailable"] == []


def _families(text: str) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(text)}


async def test_prometheus_exposition_parses_and_matches_the_json(metrics_client):
    for _ in range(3):
        await metrics_client.get("/health/live")
    await metrics_client.get("/api/v1/users/me")
    metrics.count("tasks_created", 2)
    response = await metrics_client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    assert "# TYPE tasklane_http_requests_total counter" in text
    assert "# TYPE tasklane_http_request_duration_seconds summary" in text
    families = _families(text)

    requests = families["tasklane_http_requests"]
    assert requests.type == "counter"
    by_labels = {(s.labels["route"], s.labels["method"], s.labels["status_class"]): s.value for s in requests.samples}
    assert by_labels[("/health/live", "GET", "2xx")] == 3
    assert by_labels[("/api/v1/users/me", "GET", "4xx")] == 1
    assert not any(route.endswith("metrics") for route, _, _ in by_labels)

    latency = families["tasklane_http_request_duration_seconds"]
    assert latency.type == "summary"
    live = [s for s in latency.samples if s.labels.get("route") == "/health/live"]
    quantiles = {s.labels["quantile"]: s.value for s in live if "quantile" in s.labels}
    assert set(quantiles) == {"0.5", "0.95", "0.99"}
    assert 0 < quantiles["0.5"] <= quantiles["0.95"] <= quantiles["0.99"] < 5
    count = next(s.value for s in live if s.name.endswith("_count"))
    total = next(s.value for s in live if s.name.endswith("_sum"))
    assert count == 3 and 0 < total < 5

    for name in metrics.COUNTERS:
        family = families[f"tasklane_{name}"]
        assert family.type == "counter"
        assert family.samples[0].value == (2 if name == "tasks_created" else 0)

    for gauge in ("tasklane_queue_depth", "tasklane_queue_dead_letter", "tasklane_queue_delayed"):
        assert families[gauge].type == "gauge"
        assert {s.labels["queue"]: s.value for s in families[gauge].samples} == {
            "emails": 0,
            "imports": 0,
            "webhooks": 0,
        }
    assert families["tasklane_jobs_processing"].samples[0].value == 0

    json_routes = (await read(metrics_client))["routes"]
    assert json_routes["GET /health/live"]["count"] == 3


async def test_a_route_with_no_recent_traffic_reports_nan_quantiles(metrics_client, app_client):
    redis = app_client.state["redis"]
    await redis.hset("tasklane:metrics:http", "GET /api/v1/old 2xx", 5)
    families = _families((await metrics_client.get("/metrics")).text)
    old = [s for s in families["tasklane_http_request_duration_seconds"].samples if s.labels["route"] == "/api/v1/old"]
    assert all(math.isnan(s.value) for s in old if "quantile" in s.labels)
    assert next(s.value for s in old if s.name.endswith("_count")) == 5
    window = (await read(metrics_client))["routes"]["GET /api/v1/old"]["window"]
    assert window == {"count": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}


async def test_redis_down_at_read_time_is_503_while_requests_still_work(database, settings):
    dead = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with AppClient.start(dead) as app:
        assert (await app.http.get("/health/live")).status_code == 200
        assert (await app.http.get("/api/v1/users/me")).status_code == 401
        for path in ("/api/v1/metrics", "/metrics"):
            response = await app.http.get(path)
            assert_problem(response, 503)
        # What it served is still held, for when Redis is back.
        assert app.state["metrics"].pending_size() > 0

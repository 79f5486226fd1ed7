from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.metrics.recorder import PREFIX
from tests.support import AppClient


async def reset_metrics(app: AppClient) -> None:
    """Apply whatever this process still holds (counts from earlier tests) and then wipe the metrics
    keys, so a test starts from zero."""
    redis = app.state["redis"]
    await app.state["metrics"].flush(redis)
    keys = [key async for key in redis.scan_iter(match=f"{PREFIX}:*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def metrics_client(app_client: AppClient, client: httpx.AsyncClient) -> httpx.AsyncClient:
    await reset_metrics(app_client)
    return client


async def read(http: httpx.AsyncClient, **kwargs: Any) -> dict[str, Any]:
    response = await http.get("/api/v1/metrics", **kwargs)
    assert response.status_code == 200, response.text
    return response.json()

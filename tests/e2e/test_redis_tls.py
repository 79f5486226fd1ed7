"""Redis over TLS as platforms provide it: a `rediss://` REDIS_URL with a self-signed certificate
(`?ssl_cert_reqs=none`). Everything that uses Redis works through it: readiness, rate limits, the broker
(web enqueues, worker consumes) and metrics; and the TLS port is the only one that server has."""

from __future__ import annotations

import httpx
import redis

from tests.faults import OwnRedis
from tests.support import signup


async def test_everything_redis_does_works_over_tls(stack, smtp):
    with OwnRedis(tls=True) as own:
        env = {"REDIS_URL": own.url, "METRICS_FLUSH_INTERVAL": "0.2"}
        _web, url = stack.web(extra_env=env)  # up only once /health/ready answers 200: Redis pinged over TLS
        stack.worker(processes=1, threads=1, extra_env=env)
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            ready = (await http.get("/health/ready")).json()
            # Broker: the activation email was enqueued by the web process and sent by the worker.
            headers = await signup(http, smtp, "tls@example.com")
            assert (await http.get("/api/v1/users/me", headers=headers)).status_code == 200
            # Rate limits: 5 logins a minute per address, counted in the TLS Redis.
            logins = [
                (await http.post("/api/v1/auth/login", json={"email": "tls@example.com", "password": "wrong1234"}))
                for _ in range(5)
            ]
            metrics = (await http.get("/api/v1/metrics")).json()
        client = redis.Redis.from_url(own.url)
        keys = [key.decode() for key in client.scan_iter("*")]
        client.close()
    assert ready["checks"]["redis"] == "ok" and ready["checks"]["postgres"] == "ok"
    assert [r.status_code for r in logins][-1] == 429  # the signup's login was the first of the minute
    assert metrics["counters"]["registrations"] == 1 and "unavailable" in metrics
    assert metrics["workers"]["queues"]["emails"]["dead_letter"] == 0
    for prefix in ("tasklane:rl:", "tasklane:metrics:", "dramatiq:"):
        assert any(key.startswith(prefix) for key in keys), (prefix, keys)

"""Several web processes behave as one service: limits and counters live in Redis, not in a process."""

from __future__ import annotations

import httpx

from tests.support import PASSWORD


async def test_the_sixth_registration_from_one_address_fails_whichever_process_serves_it(stack):
    web, url = stack.web(workers=2)
    statuses = []
    # A new connection per request, so the kernel spreads them over both uvicorn processes.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as http:
        for n in range(12):
            if n < 6:
                response = await http.post("/api/v1/users", json={"email": f"m{n}@example.com", "password": PASSWORD})
                statuses.append(response.status_code)
            else:
                await http.get("/health/live")
        # Login limits too: 5 a minute per address, across processes
        logins = [
            (
                await http.post("/api/v1/auth/login", json={"email": "m0@example.com", "password": "wrong-pass1"})
            ).status_code
            for _ in range(7)
        ]
    assert statuses == [201] * 5 + [429]
    assert logins == [401] * 5 + [429, 429]
    web.stop()
    served_by = {line["pid"] for line in web.logs() if line.get("message") == "request"}
    assert len(served_by) == 2, "both web processes should have served requests"

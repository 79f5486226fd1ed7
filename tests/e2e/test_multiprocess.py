"""Several web processes behave as one service: limits and counters live in Redis, not in a process."""

from __future__ import annotations

import httpx

from tests.support import PASSWORD


async def test_the_sixth_registration_from_one_address_fails_whichever_process_serves_it(stack):
    # Two web processes on two ports, taken in turn: which process serves a request is the test's choice,
    # not the kernel's (a shared socket may hand a short sequential run to one process only).
    (first, url1), (second, url2) = stack.web(), stack.web()
    async with httpx.AsyncClient(timeout=10) as http:
        statuses = [
            (
                await http.post(
                    f"{(url1, url2)[n % 2]}/api/v1/users", json={"email": f"m{n}@example.com", "password": PASSWORD}
                )
            ).status_code
            for n in range(6)
        ]
        # Login limits too: 5 a minute per address, across processes.
        logins = [
            (
                await http.post(
                    f"{(url1, url2)[n % 2]}/api/v1/auth/login",
                    json={"email": "m0@example.com", "password": "wrong-pass1"},
                )
            ).status_code
            for n in range(7)
        ]
    assert statuses == [201] * 5 + [429]
    assert logins == [401] * 5 + [429, 429]
    first.stop()
    second.stop()
    for web in (first, second):
        served = [line for line in web.logs() if line.get("message") == "request"]
        assert len(served) >= 6, "each web process should have served its half of the requests"

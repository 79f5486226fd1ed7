"""Brute force: the 4-digit activation code cannot be guessed (3 tries a minute per email, and a code is void
after 5 wrong ones: 5 chances in 10,000 per code), login limits hold across two uvicorn worker processes,
and X-Forwarded-For from a peer that is not a trusted proxy changes nothing."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest

from tests.support import PASSWORD, code_in, db_value, eventually, register

pytestmark = pytest.mark.security

API = "/api/v1"


def forget_window(redis_client: Any, name: str) -> None:
    """What a minute of waiting does: the limiter's window for `name` is empty again."""
    keys = list(redis_client.scan_iter(match=f"tasklane:rl:{name}:*"))
    if keys:
        redis_client.delete(*keys)


async def test_the_activation_code_cannot_be_guessed(client, ctx, smtp, redis_client, report):
    from tests.support import deliver_pending_emails

    email = "victim@example.com"
    assert (await register(client, email)).status_code == 201
    await deliver_pending_emails(ctx)
    code = code_in((await smtp.wait_for(email))[-1])
    wrong = [f"{(int(code) + n) % 10_000:04d}" for n in range(1, 20)]

    async def attempt(guess: str, login: str = email, password: str = PASSWORD) -> httpx.Response:
        return await client.post(f"{API}/users/activate", json={"code": guess}, auth=(login, password))

    # A burst: 3 attempts a minute per email, whatever the spelling of the email or the password sent;
    # the 4th is refused before the code is even compared, even when it is the right one.
    burst = [
        await attempt(wrong[0]),
        await attempt(wrong[1], login="VICTIM@Example.com "),
        await attempt(wrong[2], password="wrong-password-1"),  # counts against the limit, not the code
        await attempt(code),
    ]
    assert [r.status_code for r in burst] == [400, 400, 401, 429], [r.text for r in burst]
    assert "Retry-After" in burst[3].headers
    # A minute later: three more wrong guesses make five, and the code is void...
    forget_window(redis_client, "activate")
    more = [await attempt(wrong[3]), await attempt(wrong[4]), await attempt(wrong[5])]
    assert [r.status_code for r in more] == [400, 400, 410], [r.text for r in more]
    assert "void" in more[2].json()["detail"]
    # ...the right one included, a minute later still.
    forget_window(redis_client, "activate")
    last = await attempt(code)
    assert last.status_code == 410, last.text
    active = await db_value(ctx, "SELECT is_active FROM accounts WHERE email = $1", email)
    # New codes are limited too: 3 a minute.
    resend = [(await client.post(f"{API}/users/activation-code", auth=(email, PASSWORD))).status_code for _ in range(4)]
    report(
        "activation code guessing",
        burst=[r.status_code for r in burst],
        after_a_minute=[r.status_code for r in more],
        right_code_after_five_wrong=last.status_code,
        wrong_guesses_before_void=5,
        chance_per_code="5 in 10,000",
        account_activated=active,
        new_code_requests=resend,
    )
    assert active is False
    assert resend == [202, 202, 202, 429]


async def _logins(url: str, n: int, forwarded: list[str] | None = None) -> list[int]:
    """n failed logins, each on a new connection (so a multi-process server spreads them)."""
    statuses = []
    for i in range(n):
        headers = {"X-Forwarded-For": forwarded[i]} if forwarded else {}
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            response = await http.post(
                f"{API}/auth/login", json={"email": "nobody@example.com", "password": "wrong-pass1"}, headers=headers
            )
        statuses.append(response.status_code)
    return statuses


async def test_login_limits_hold_across_two_uvicorn_processes(stack, redis_client, report):
    _web, url = stack.web(workers=2)
    # 40 attempts, 8 at a time on new connections, so both processes accept some.
    batches = await asyncio.gather(*(_logins(url, 5) for _ in range(8)))
    statuses = sorted(s for batch in batches for s in batch)
    # Each uvicorn process records its own requests and flushes them (METRICS_FLUSH_INTERVAL=0.2) under a key
    # of its own: two applied-batch keys mean both served some.
    here = f":{os.getpid()}:".encode()  # this test process's own in-process app, if it ran

    def serving() -> int:
        """How many processes' counts reached Redis, once both did (0 before)."""
        n = len([k for k in redis_client.scan_iter(match="tasklane:metrics:applied:web:*") if here not in k])
        return n if n >= 2 else 0

    processes = await eventually(serving, 10, "the logins reaching both processes (else the test proves nothing)")
    answered = {status: statuses.count(status) for status in sorted(set(statuses))}
    report("40 failed logins from one address, 2 uvicorn processes", answers=answered, processes_serving=processes)
    assert statuses == [401] * 5 + [429] * 35
    assert processes == 2, "the logins did not reach both processes; the test proves nothing"


@pytest.mark.parametrize(
    ("trusted", "forwarded_for"),
    [
        ("", lambda i: f"198.51.100.{i}"),  # no proxy trusted: the header is the client's word
        ("10.0.0.0/8", lambda i: f"198.51.100.{i}"),  # proxies trusted, but the peer is not one of them
        # The peer is a trusted proxy: the client spoofs a first hop, the proxy appends the real address.
        ("127.0.0.1", lambda i: f"198.51.100.{i}, 203.0.113.7"),
    ],
    ids=["no-trusted-proxy", "untrusted-peer", "spoofed-hop-behind-trusted-proxy"],
)
async def test_x_forwarded_for_from_an_untrusted_source_changes_nothing(stack, trusted, forwarded_for, report):
    _web, url = stack.web(extra_env={"TRUSTED_PROXIES": trusted})
    statuses = await _logins(url, 8, [forwarded_for(i) for i in range(8)])
    report(f"TRUSTED_PROXIES={trusted!r}, X-Forwarded-For varied per attempt", statuses=statuses)
    assert statuses == [401] * 5 + [429] * 3


async def test_x_forwarded_for_from_a_trusted_proxy_is_honoured(stack, report):
    """The control for the above: behind a trusted proxy, distinct clients get their own limits."""
    _web, url = stack.web(extra_env={"TRUSTED_PROXIES": "127.0.0.1"})
    statuses = await _logins(url, 8, [f"198.51.100.{i}" for i in range(8)])
    report("TRUSTED_PROXIES='127.0.0.1', 8 distinct clients", statuses=statuses)
    assert statuses == [401] * 8
    assert (await _logins(url, 1))[0] == 401  # the proxy's own address has a budget of its own

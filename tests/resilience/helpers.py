"""Small helpers shared by the fault-injection scenarios."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import httpx

from tests.support import PASSWORD, code_in

T = TypeVar("T")


async def until(check: Callable[[], Awaitable[T]], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s (last: {value!r})")
        await asyncio.sleep(every)


def client_address(n: int) -> str:
    """A distinct client address per user, sent as X-Forwarded-For (TRUSTED_PROXIES=127.0.0.1)."""
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


async def signup(http: httpx.AsyncClient, smtp: Any, email: str, n: int = 0) -> dict[str, str]:
    """Register (from its own client address), activate with the emailed code, log in: Bearer headers."""
    forwarded = {"X-Forwarded-For": client_address(n)}
    response = await http.post("/api/v1/users", json={"email": email, "password": PASSWORD}, headers=forwarded)
    assert response.status_code == 201, response.text
    code = code_in((await smtp.wait_for(email, timeout=30))[-1])
    response = await http.post("/api/v1/users/activate", json={"code": code}, auth=(email, PASSWORD))
    assert response.status_code == 200, response.text
    response = await http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}, headers=forwarded)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def upload(
    http: httpx.AsyncClient, headers: dict[str, str], content: bytes, name: str = "tasks.csv", **fields: str
) -> httpx.Response:
    return await http.post(
        "/api/v1/imports", files={"file": (name, content, "text/csv")}, data=fields or None, headers=headers
    )


async def wait_job(http: httpx.AsyncClient, headers: dict[str, str], job_id: str, timeout: float) -> dict[str, Any]:
    async def finished() -> dict[str, Any] | None:
        job = (await http.get(f"/api/v1/imports/{job_id}", headers=headers)).json()
        return job if job["status"] not in ("queued", "processing") else None

    return await until(finished, timeout, f"import {job_id} to finish", every=0.2)


async def scalar(conn: asyncpg.Connection, sql: str, *args: Any) -> Any:
    return await conn.fetchval(sql, *args)

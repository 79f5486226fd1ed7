"""Liveness (the process answers) and readiness (its backing services answer)."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.errors import problem
from service.http.openapi import operation
from service.json import json_response

CHECK_TIMEOUT = 2.0


class HealthOut(BaseModel):
    status: str
    checks: dict[str, str] | None = None


@operation(summary="The process is up", tag="health", responses={200: HealthOut}, auth=None)
async def live(request: Request) -> Response:
    return json_response({"status": "ok"})


async def _postgres(request: Request) -> None:
    async with request.state.db.connection() as conn:
        await conn.fetchval("SELECT 1")


async def _redis(request: Request) -> None:
    await request.state.redis.ping()


@operation(
    summary="PostgreSQL and Redis answer; the upload store is reported",
    tag="health",
    responses={200: HealthOut},
    errors=(503,),
    auth=None,
    description=(
        "503 when PostgreSQL or Redis does not answer. The upload store (checks.store) is probed at most "
        "every few seconds; when it is away the answer stays 200 with status `degraded`: only imports "
        "need it, so the process keeps serving everything else."
    ),
)
async def ready(request: Request) -> Response:
    checks = {"postgres": _postgres(request), "redis": _redis(request)}
    *results, store_ok = await asyncio.gather(
        *(asyncio.wait_for(check, CHECK_TIMEOUT) for check in checks.values()),
        request.state.ctx.store.ready(),
        return_exceptions=True,
    )
    status = {name: "ok" if r is None else "unavailable" for name, r in zip(checks, results, strict=True)}
    status["store"] = "ok" if store_ok is True else "unavailable"
    failed = [name for name in checks if status[name] != "ok"]
    if failed:
        return problem(
            503, f"Not ready: {', '.join(failed)} unreachable", slug="not-ready", headers={"Retry-After": "5"}
        )
    return json_response({"status": "ok" if status["store"] == "ok" else "degraded", "checks": status})


routes = [
    Route("/health/live", live, methods=["GET"]),
    Route("/health/ready", ready, methods=["GET"]),
]

"""The practical limit of this stack, for the benchmark: bare Starlette endpoints that run the same
SELECT (and INSERT) as GET/POST /tasks through a raw asyncpg pool and answer the rows as JSON. No
middleware, no authentication, no validation, no cursor: only what no implementation can skip.

    BENCH_DATABASE_URL=... BENCH_USER_ID=... uvicorn tests.perf.baseline_tasks:create_app --factory
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

LIST_SQL = """
SELECT t.id::text AS id, t.title, t.description, t.status, t.priority, t.due_date, c.name AS category,
       t.created_at, t.updated_at, t.import_id::text AS import_id
FROM tasks t
LEFT JOIN categories c ON c.id = t.category_id
WHERE t.user_id = $1
ORDER BY t.created_at DESC, t.id DESC
LIMIT 21
"""
INSERT_SQL = """
INSERT INTO tasks (user_id, title, description, status, priority, due_date)
VALUES ($1, $2, $3, $4, $5, $6)
RETURNING id, title, description, status, priority, due_date, NULL::text AS category, created_at, updated_at, import_id
"""


def _default(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    raise TypeError


async def _keep_session(conn: asyncpg.Connection) -> None:
    return None


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content, default=_default), status_code=status, media_type="application/json")


def create_app() -> Starlette:
    url = os.environ["BENCH_DATABASE_URL"]
    user_id = UUID(os.environ["BENCH_USER_ID"])
    pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        # BENCH_POOL_RESET=off: release connections without asyncpg's reset query, as tasklane does,
        # for a like-for-like comparison (bench_tasks --baseline-without-reset).
        options: dict[str, Any] = {"reset": _keep_session} if os.environ.get("BENCH_POOL_RESET") == "off" else {}
        pool = await asyncpg.create_pool(url, min_size=1, max_size=10, **options)
        try:
            yield
        finally:
            await pool.close()

    async def live(request: Request) -> Response:
        return _json({"status": "ok"})

    async def list_tasks(request: Request) -> Response:
        assert pool is not None
        # ?limit=20 only: one more row than the page, as tasklane fetches, with the same literal LIMIT
        # (a generic plan PostgreSQL reuses instead of planning every execution).
        async with pool.acquire() as conn:
            rows = await conn.fetch(LIST_SQL, user_id)
        return _json({"items": [dict(r) for r in rows[:20]], "next_cursor": None})

    async def create_task(request: Request) -> Response:
        assert pool is not None
        data = orjson.loads(await request.body())
        async with pool.acquire() as conn:
            row = await conn.fetchrow(
                INSERT_SQL,
                user_id,
                data["title"],
                data.get("description"),
                data.get("status", "todo"),
                data.get("priority", 3),
                None,
            )
        return _json(dict(row), 201)

    return Starlette(
        routes=[
            Route("/health/live", live),
            Route("/api/v1/tasks", list_tasks, methods=["GET"]),
            Route("/api/v1/tasks", create_task, methods=["POST"]),
        ],
        lifespan=lifespan,
    )

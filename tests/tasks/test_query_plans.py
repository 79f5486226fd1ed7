"""Every combination of GET /tasks filters and sort is answered through an index, never a sequential scan
of tasks: EXPLAIN of the service's exact statements over a realistically analysed table.

This runs on 30,000 tasks to stay quick; `python -m tests.perf.explain_tasks` runs the same survey on
1,000,000 with timings (see its output in the branch's report).
"""

from __future__ import annotations

import asyncpg
import pytest

from tests.perf.explain_tasks import SORTS, survey

SEED = """
WITH cats AS (
    INSERT INTO categories (user_id, name)
    SELECT $1, 'Category ' || lpad(i::text, 2, '0') FROM generate_series(0, 19) AS i
    RETURNING id, name
), ids AS (SELECT array_agg(id ORDER BY name) AS c FROM cats)
INSERT INTO tasks (user_id, title, description, status, priority, due_date, category_id, created_at)
SELECT $1,
       'task ' || i,
       CASE WHEN i % 3 = 0 THEN NULL
            ELSE 'words ' || md5(i::text) || CASE WHEN i % 150 = 0 THEN ' zanzibar' ELSE '' END END,
       (ARRAY['todo', 'todo', 'in_progress', 'done', 'done'])[1 + i % 5],
       1 + (i / 7) % 5,
       CASE WHEN i % 10 < 3 THEN NULL ELSE current_date + (i % 730 - 365) END,
       CASE WHEN i % 5 = 0 THEN NULL ELSE ids.c[1 + (i * 7) % 20] END,
       now() - make_interval(mins => i)
FROM generate_series(1, $2) AS i, ids
"""


@pytest.fixture
async def planned_user(client, ctx, settings) -> tuple[asyncpg.Connection, object]:
    conn = await asyncpg.connect(settings.database_url)
    users = []
    for n, count in ((0, 20_000), *((i, 2_500) for i in range(1, 5))):
        user_id = await conn.fetchval(
            "INSERT INTO accounts (email, password_hash, is_active) VALUES ($1, 'x', true) RETURNING id",
            f"planner{n}@example.com",
        )
        await conn.execute(SEED, user_id, count)
        users.append(user_id)
    await conn.execute("ANALYZE tasks; ANALYZE categories; ANALYZE accounts")
    yield conn, users[0]
    await conn.close()


async def test_every_filter_and_sort_combination_uses_an_index(planned_user):
    conn, user_id = planned_user

    plans = await survey(conn, user_id)

    assert len([p for p in plans if p.mode == "custom"]) == 6 * 96 * 2
    seq = [f"{p.sort} [{p.filters}] {p.page} {p.mode}" for p in plans if p.seq_scan]
    assert seq == [], f"sequential scans of tasks: {seq[:10]}"
    assert all(p.indexes for p in plans)
    # Unfiltered, each sort reads its own index, in order (no sort of the user's tasks).
    expected = {"created_at": "tasks_user_created", "due_date": "tasks_user_due", "priority": "tasks_user_priority"}
    for p in plans:
        if p.filters == "(none)":
            assert p.indexes == [expected[p.sort.lstrip("-")]], p
    assert {p.sort for p in plans} == set(SORTS)
